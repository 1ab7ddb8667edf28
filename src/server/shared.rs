//! What the worker shares with its server: the last pass's report (for `/status`, `/readyz`
//! and the board), the metrics, what the rules watch (for webhooks to be matched against),
//! and the bell a webhook rings to ask for a pass. The worker writes it; the server reads it
//! and rings the bell, nothing more.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::webhooks::payload::Hint;
use crate::engine::{PassReport, Scope};
use crate::metrics::Metrics;
use crate::rules::{Receiver, ReceiverKind, Rules};
use crate::shard::Fleet;

/// What the worker shares with the server.
pub struct Shared {
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// This worker's shard of the fleet, and how to reach the others.
    pub fleet: Fleet,
    last: RwLock<Option<(Arc<PassReport>, Instant)>>,
    watching: RwLock<Arc<Watching>>,
    wakes: watch::Sender<u64>,
    due: Mutex<Option<Scope>>,
    deliveries: Mutex<Deliveries>,
    /// What the peers' `/status` said last, and when it was asked.
    peers: tokio::sync::Mutex<Option<(Instant, Arc<Vec<crate::server::board::ShardStatus>>)>>,
}

/// How many delivery ids are remembered (the oldest are forgotten first).
const REMEMBERED_DELIVERIES: usize = 10_000;

/// The delivery ids seen lately, per receiver.
#[derive(Debug, Default)]
struct Deliveries {
    seen: std::collections::HashSet<(ReceiverKind, String)>,
    order: std::collections::VecDeque<(ReceiverKind, String)>,
}

/// What the rules in force watch.
#[derive(Debug, Default, Clone)]
pub struct Watching {
    /// Time between passes.
    pub interval: Duration,
    /// The enabled receivers.
    pub receivers: Vec<Receiver>,
    /// Every promotion's image: (promotion, registry host, repository path).
    pub images: Vec<(String, String, String)>,
    /// Every GitOps destination: its repository's URL, its branch, and the promotions
    /// with an environment writing there.
    pub destinations: Vec<(String, String, BTreeSet<String>)>,
    /// What the unauthenticated pages must not show.
    pub redaction: super::redact::Redaction,
}

impl Watching {
    /// What `rules` watch.
    pub fn of(rules: &Rules) -> Self {
        Self {
            interval: Duration::try_from(rules.settings.interval)
                .unwrap_or(Duration::from_secs(120)),
            receivers: rules.settings.receivers.clone(),
            images: rules
                .promotions
                .iter()
                .map(|p| {
                    let (host, path) = p.image.split();
                    (p.name.clone(), host.to_string(), path)
                })
                .collect(),
            destinations: {
                let mut by: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
                for p in &rules.promotions {
                    for env in &p.environments {
                        let d = env.destination.clone();
                        let url = rules
                            .settings
                            .repository(&d.repository)
                            .map(|g| g.url.clone())
                            .unwrap_or_default();
                        by.entry((url, d.branch))
                            .or_default()
                            .insert(p.name.clone());
                    }
                }
                by.into_iter()
                    .map(|((u, b), names)| (u, b, names))
                    .collect()
            },
            redaction: super::redact::Redaction::of(&rules.settings),
        }
    }

    /// What a pass for `hint` covers: the promotions watching the image it names, or those
    /// writing to the GitOps repository and branch it says moved (every promotion: a full
    /// pass); `None` when nothing here watches what it names.
    pub fn scope_of(&self, hint: &Hint) -> Option<Scope> {
        match hint {
            Hint::Pushed { host, path, .. } => {
                let names = self.watching_image(host.as_deref(), path);
                (!names.is_empty()).then(|| Scope::Promotions(names.into_iter().collect()))
            }
            Hint::Branch { repository, branch } => {
                let names = self.writing_to(repository, branch);
                if names.is_empty() {
                    None
                } else if names.len() == self.images.len() {
                    Some(Scope::All)
                } else {
                    Some(Scope::Promotions(names))
                }
            }
        }
    }

    /// The promotions watching the repository `path`, on `host` when the sender named one.
    fn watching_image(&self, host: Option<&str>, path: &str) -> Vec<String> {
        fn docker_hub(h: &str) -> &str {
            match h {
                "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
                    "docker.io"
                }
                other => other,
            }
        }
        self.images
            .iter()
            .filter(|(_, h, p)| {
                p.eq_ignore_ascii_case(path)
                    && host.is_none_or(|host| docker_hub(h) == docker_hub(host))
            })
            .map(|(name, _, _)| name.clone())
            .collect()
    }

    /// The promotions writing to `branch` of the repository named `name` (`owner/name` or
    /// a URL).
    fn writing_to(&self, name: &str, branch: &str) -> BTreeSet<String> {
        let path = |s: &str| {
            let s = s.trim_end_matches('/');
            let s = s.strip_suffix(".git").unwrap_or(s);
            let s = s.split_once("://").map_or(s, |(_, rest)| rest);
            // `git@host:owner/name` and `host/owner/name` both end in the path.
            s.rsplit_once(':')
                .map_or(s, |(_, p)| p)
                .to_ascii_lowercase()
        };
        let theirs = path(name);
        if theirs.is_empty() {
            return BTreeSet::new();
        }
        self.destinations
            .iter()
            .filter(|(url, b, _)| {
                let ours = path(url);
                b == branch && (ours == theirs || ours.ends_with(&format!("/{theirs}")))
            })
            .flat_map(|(_, _, names)| names.iter().cloned())
            .collect()
    }

    /// The receiver of `kind`, when enabled.
    pub fn receiver(&self, kind: ReceiverKind) -> Option<&Receiver> {
        self.receivers.iter().find(|r| r.kind == kind)
    }
}

impl Shared {
    /// Nothing passed yet; watching what `rules` say.
    pub fn new(metrics: Arc<Metrics>, rules: &Rules) -> Self {
        Self {
            metrics,
            fleet: Fleet::alone(),
            last: RwLock::new(None),
            watching: RwLock::new(Arc::new(Watching::of(rules))),
            wakes: watch::Sender::new(0),
            due: Mutex::new(None),
            deliveries: Mutex::default(),
            peers: tokio::sync::Mutex::new(None),
        }
    }

    /// The peers' statuses: asked again only when what was asked last is older than
    /// `fresh`, so that any number of open boards cost the peers one `/status` each per
    /// refresh (concurrent asks wait for the one in flight).
    pub async fn peer_statuses<F, Fut>(
        &self,
        fresh: std::time::Duration,
        ask: F,
    ) -> Arc<Vec<crate::server::board::ShardStatus>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Vec<crate::server::board::ShardStatus>>,
    {
        let mut peers = self.peers.lock().await;
        if let Some((at, statuses)) = peers.as_ref()
            && at.elapsed() < fresh
        {
            return Arc::clone(statuses);
        }
        let statuses = Arc::new(ask().await);
        *peers = Some((Instant::now(), Arc::clone(&statuses)));
        statuses
    }

    /// The same, as shard `fleet` of a sharded fleet.
    pub fn with_fleet(mut self, fleet: Fleet) -> Self {
        self.fleet = fleet;
        self
    }

    /// The promotions of `scope` this worker owns (`None`: none), and the other shards
    /// owning some of it (all of them, for every promotion).
    pub fn split(&self, scope: Scope) -> (Option<Scope>, BTreeSet<usize>) {
        let shard = self.fleet.shard;
        match scope {
            Scope::All => (Some(Scope::All), self.fleet.others().collect()),
            Scope::Promotions(names) => {
                let (own, others): (BTreeSet<String>, BTreeSet<String>) =
                    names.into_iter().partition(|n| shard.owns(n));
                let owners = others
                    .iter()
                    .map(|n| crate::shard::owner(n, shard.count))
                    .collect();
                ((!own.is_empty()).then_some(Scope::Promotions(own)), owners)
            }
        }
    }

    /// Whether the delivery `id` to `kind`'s receiver is new (then it is remembered); a
    /// delivery seen before is a replay.
    pub fn first_delivery(&self, kind: ReceiverKind, id: &str) -> bool {
        let Ok(mut d) = self.deliveries.lock() else {
            return true;
        };
        let key = (kind, id.to_string());
        if !d.seen.insert(key.clone()) {
            return false;
        }
        d.order.push_back(key);
        if d.order.len() > REMEMBERED_DELIVERIES
            && let Some(oldest) = d.order.pop_front()
        {
            d.seen.remove(&oldest);
        }
        true
    }

    /// A pass finished.
    pub fn finished(&self, report: Arc<PassReport>) {
        if let Ok(mut last) = self.last.write() {
            *last = Some((report, Instant::now()));
        }
    }

    /// The rules were (re)loaded.
    pub fn set_rules(&self, rules: &Rules) {
        if let Ok(mut w) = self.watching.write() {
            *w = Arc::new(Watching::of(rules));
        }
    }

    /// What the rules in force watch (shared, not copied: every webhook asks).
    pub fn watching(&self) -> Arc<Watching> {
        self.watching
            .read()
            .map(|w| Arc::clone(&w))
            .unwrap_or_default()
    }

    /// The last pass's report and when it finished.
    pub fn last(&self) -> Option<(Arc<PassReport>, Instant)> {
        self.last.read().ok().and_then(|l| l.clone())
    }

    /// Ask for a pass over `scope` soon. Rings while one runs add up to one more pass
    /// after it, over everything they asked for.
    pub fn wake(&self, scope: Scope) {
        if let Ok(mut due) = self.due.lock() {
            *due = Some(match due.take() {
                Some(earlier) => earlier.union(scope),
                None => scope,
            });
        }
        self.wakes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// What the rings so far asked to pass over, forgetting it (`None`: nothing).
    pub fn take_due(&self) -> Option<Scope> {
        self.due.lock().ok().and_then(|mut due| due.take())
    }

    /// The bell the worker waits on.
    pub fn wakes(&self) -> watch::Receiver<u64> {
        self.wakes.subscribe()
    }

    /// `Ok` when a pass finished within three intervals, else why not.
    pub fn ready(&self) -> Result<(), String> {
        let interval = self.watching.read().map(|w| w.interval).unwrap_or_default();
        match self.last() {
            None => Err("no pass has finished yet".into()),
            Some((_, at)) if at.elapsed() > interval * 3 => Err(format!(
                "the last pass finished {}s ago, more than three intervals ({}s)",
                at.elapsed().as_secs(),
                (interval * 3).as_secs()
            )),
            Some(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watching(git_url: &str) -> Watching {
        Watching {
            images: vec![
                ("app".into(), "ghcr.io".into(), "acme/app".into()),
                ("nginx".into(), "docker.io".into(), "library/nginx".into()),
                ("app-canary".into(), "ghcr.io".into(), "acme/app".into()),
            ],
            destinations: vec![(
                git_url.into(),
                "main".into(),
                ["app", "nginx", "app-canary"].map(String::from).into(),
            )],
            ..Watching::default()
        }
    }

    #[test]
    fn images_match_by_path_and_by_host_when_the_sender_names_one() {
        let w = watching("https://github.com/acme/deploys.git");
        assert_eq!(w.watching_image(None, "acme/app"), ["app", "app-canary"]);
        assert_eq!(
            w.watching_image(Some("ghcr.io"), "acme/app"),
            ["app", "app-canary"]
        );
        assert!(w.watching_image(Some("quay.io"), "acme/app").is_empty());
        assert_eq!(
            w.watching_image(Some("index.docker.io"), "library/nginx"),
            ["nginx"]
        );
        assert!(w.watching_image(None, "acme/other").is_empty());
    }

    #[test]
    fn branch_pushes_match_the_gitops_repository_and_branch() {
        for url in [
            "https://github.com/acme/deploys.git",
            "git@github.com:acme/deploys.git",
            "ssh://git@gitlab.example.com:2222/acme/deploys",
            "file:///srv/git/acme/deploys.git",
        ] {
            let w = watching(url);
            assert_eq!(w.writing_to("acme/deploys", "main").len(), 3, "{url}");
            assert_eq!(w.writing_to("Acme/Deploys", "main").len(), 3, "{url}");
            assert!(w.writing_to("acme/deploys", "feature").is_empty(), "{url}");
            assert!(w.writing_to("acme/other", "main").is_empty(), "{url}");
            assert!(
                w.writing_to("other/acme/deploys", "main").is_empty(),
                "{url}"
            );
        }
    }

    /// A push to one of several repositories asks for a pass over the promotions writing
    /// there only; a push to the repository everything writes to, for a full pass.
    #[test]
    fn branch_pushes_scope_the_promotions_writing_there() {
        let mut w = watching("https://github.com/acme/deploys.git");
        w.destinations.push((
            "https://github.com/acme/app-manifests.git".into(),
            "main".into(),
            ["app"].map(String::from).into(),
        ));
        let push = |repository: &str| Hint::Branch {
            repository: repository.into(),
            branch: "main".into(),
        };
        assert_eq!(
            w.scope_of(&push("acme/app-manifests")),
            Some(Scope::Promotions(["app"].map(String::from).into()))
        );
        assert_eq!(w.scope_of(&push("acme/deploys")), Some(Scope::All));
        assert_eq!(w.scope_of(&push("acme/unknown")), None);
    }
}
