//! Watching the controllers' objects between a worker's passes, so that a rollout that
//! turns healthy, degraded or stuck is acted on within seconds rather than at the next
//! interval: one list (in pages; of just the object, where one is watched there), then one
//! watch, per cluster, kind and namespace, however many objects and promotions it covers. A watch that ends is resumed from the last resource
//! version it saw; one whose history the API server expired (410 Gone) lists again.
//!
//! A watch only rings for a pass over the promotions whose verified object changed; the
//! pass lists what it decides on. So a watch that cannot run (no `watch` verb, an API
//! that is down) delays nothing beyond the interval, and `once` decides the same without
//! one. It must not decide anything itself.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::mem::Discriminant;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::api::{DynamicObject, WatchEvent};

use super::cluster::{ClusterError, Clusters, Kind, List, Place, classify, objects_of};
use super::{Rollout, RolloutState, argocd, flux};
use crate::rules::Rules;

/// How long the API server may keep one watch open before it is made again (its
/// `timeoutSeconds`; the API server's own limit is 30 to 60 minutes).
const WATCH_SECONDS: u32 = 290;

/// How long after a failure a watch is tried again, at first; it doubles up to
/// [`RETRY_LONGEST`] while the failures go on.
const RETRY_FIRST: Duration = Duration::from_secs(2);
const RETRY_LONGEST: Duration = Duration::from_secs(120);

/// Asks for a pass over these promotions (the worker's bell).
pub type Ring = Arc<dyn Fn(BTreeSet<String>) + Send + Sync>;

/// Which promotions each controller object verifies.
type Concerns = BTreeMap<Place, BTreeSet<String>>;

/// The controller objects the `verify:` of `rules` name, with the promotions they verify.
fn concerns(rules: &Rules) -> Concerns {
    let mut concerns = Concerns::new();
    for promotion in &rules.promotions {
        for env in &promotion.environments {
            if let Some(v) = &env.verify {
                concerns
                    .entry((v.cluster.clone(), v.controller.clone()))
                    .or_default()
                    .insert(promotion.name.clone());
            }
        }
    }
    concerns
}

/// A worker's watches, a task per list; they stop when dropped.
#[derive(Default)]
pub struct Watches {
    /// The clients the running tasks watch through.
    following: Option<Arc<Clusters>>,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Watches {
    /// Watch the controller objects the `verify:` of `rules` name through `clusters`,
    /// calling `ring` with the promotions of each object whose rollout changes. The engine
    /// makes its cluster clients anew whenever its rules change, so watches through the
    /// same clients go on as they are (nothing is worked out again after each pass), and
    /// new clients start them afresh.
    pub fn follow(&mut self, clusters: &Arc<Clusters>, rules: &Rules, ring: &Ring) {
        if self
            .following
            .as_ref()
            .is_some_and(|watched| Arc::ptr_eq(watched, clusters))
        {
            return;
        }
        self.stop();
        let mut lists: BTreeMap<List, Objects> = BTreeMap::new();
        for ((cluster, controller), promotions) in concerns(rules) {
            for (kind, namespace, name) in objects_of(&controller) {
                lists
                    .entry((cluster.clone(), kind, namespace.to_string()))
                    .or_default()
                    .entry(name.to_string())
                    .or_default()
                    .extend(promotions.iter().cloned());
            }
        }
        self.tasks = lists
            .into_iter()
            .map(|(list, objects)| {
                let watch = ListWatch {
                    clusters: Arc::clone(clusters),
                    list,
                    objects,
                    ring: Arc::clone(ring),
                    seen: None,
                };
                tokio::spawn(watch.run()).abort_handle()
            })
            .collect();
        self.following = Some(Arc::clone(clusters));
    }

    fn stop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        self.following = None;
    }
}

impl Drop for Watches {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The objects of one list that are watched, by name, with the promotions each verifies.
type Objects = HashMap<String, BTreeSet<String>>;

/// What of an object's report a pass acts on: the revisions, the kind of state, since
/// when it is healthy, and the images it runs. Messages are left out: a sync's progress
/// does not ring.
#[derive(Debug, PartialEq, Eq)]
struct Gist {
    revisions: Vec<String>,
    state: Discriminant<RolloutState>,
    since: Option<Timestamp>,
    images: Vec<String>,
}

impl Gist {
    fn of(kind: Kind, object: &DynamicObject) -> Option<Self> {
        let value = serde_json::to_value(object).ok()?;
        let rollout = match kind {
            Kind::Application => argocd::rollout(&value),
            Kind::Kustomization => flux::rollout(&value, None),
            Kind::HelmRelease => Rollout {
                revisions: Vec::new(),
                state: flux::release_state(&value),
                history: Vec::new(),
                images: Vec::new(),
            },
        };
        let since = match rollout.state {
            RolloutState::Healthy { since } => since,
            _ => None,
        };
        Some(Self {
            state: std::mem::discriminant(&rollout.state),
            revisions: rollout.revisions,
            since,
            images: rollout.images,
        })
    }
}

/// Why a list's watch stopped.
enum Stop {
    /// The API server no longer has the changes since our version: list again.
    Expired,
    /// It failed: try again later.
    Failed(ClusterError),
}

/// The watch of one list.
struct ListWatch {
    clusters: Arc<Clusters>,
    list: List,
    objects: Objects,
    ring: Ring,
    /// Each watched object's gist, once listed.
    seen: Option<HashMap<String, Gist>>,
}

impl ListWatch {
    /// List and watch, again and again, until aborted.
    async fn run(mut self) {
        let mut retry = RETRY_FIRST;
        let mut failing: Option<String> = None;
        loop {
            match self.list_and_watch(&mut failing).await {
                Stop::Expired => retry = RETRY_FIRST,
                Stop::Failed(e) => {
                    let said = e.to_string();
                    if failing.as_ref() != Some(&said) {
                        tracing::warn!(error = %said, retry_in_s = retry.as_secs(), "cannot watch rollouts; they are read at each pass until the watch works");
                        failing = Some(said);
                    }
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(RETRY_LONGEST);
                }
            }
        }
    }

    /// List the objects, then watch from that version until the watch can no longer go on.
    async fn list_and_watch(&mut self, failing: &mut Option<String>) -> Stop {
        let (cluster, kind, namespace) = &self.list;
        let kind = *kind;
        // One object watched: the API sends only it.
        let selector = self.selector();
        let mut now: HashMap<String, Gist> = HashMap::new();
        let objects = &self.objects;
        let listed = self
            .clusters
            .list_pages((cluster, kind, namespace), selector.as_deref(), |items| {
                now.extend(items.iter().filter_map(|object| {
                    let name = object.metadata.name.as_ref()?;
                    objects.contains_key(name).then_some(())?;
                    Some((name.clone(), Gist::of(kind, object)?))
                }));
            })
            .await;
        let version = match listed {
            Ok(version) => version,
            Err(e) => return Stop::Failed(e),
        };
        self.listed(now);
        self.watch(version, selector.as_deref(), failing).await
    }

    /// `metadata.name=NAME` when this list watches one object.
    fn selector(&self) -> Option<String> {
        match self.objects.len() {
            1 => self
                .objects
                .keys()
                .next()
                .map(|n| format!("metadata.name={n}")),
            _ => None,
        }
    }

    /// Note what a list found (each watched object's gist); ring for the objects that
    /// changed since the last list (the first list only starts watching: the pass before
    /// it read the same).
    fn listed(&mut self, now: HashMap<String, Gist>) {
        if let Some(seen) = &self.seen {
            let changed: BTreeSet<String> = self
                .objects
                .iter()
                .filter(|(name, _)| seen.get(*name) != now.get(*name))
                .flat_map(|(_, promotions)| promotions.iter().cloned())
                .collect();
            if !changed.is_empty() {
                (self.ring)(changed);
            }
        }
        self.seen = Some(now);
    }

    /// Watch from `version`, again each time a watch ends by its timeout, ringing for each
    /// watched object whose gist changes; until the history expires or a watch fails.
    async fn watch(
        &mut self,
        mut version: String,
        selector: Option<&str>,
        failing: &mut Option<String>,
    ) -> Stop {
        let (cluster, kind, namespace) = &self.list;
        let seen = self.seen.get_or_insert_default();
        loop {
            let started = tokio::time::Instant::now();
            let mut events = match self
                .clusters
                .watch(
                    (cluster, *kind, namespace),
                    &version,
                    selector,
                    WATCH_SECONDS,
                )
                .await
            {
                Ok(events) => events,
                Err(e) => return Stop::Failed(e),
            };
            if failing.take().is_some() {
                tracing::info!(objects = kind.plural(), namespace = %namespace, "watching rollouts again");
            }
            loop {
                let event = match events.next().await {
                    Ok(Some(event)) => event,
                    Ok(None) => break,
                    Err(e) => return Stop::Failed(e),
                };
                let (object, gone) = match event {
                    WatchEvent::Added(object) | WatchEvent::Modified(object) => (object, false),
                    WatchEvent::Deleted(object) => (object, true),
                    WatchEvent::Bookmark(mark) => {
                        version = mark.metadata.resource_version;
                        continue;
                    }
                    WatchEvent::Error(status) if status.code == 410 => return Stop::Expired,
                    WatchEvent::Error(status) => {
                        return Stop::Failed(classify(
                            cluster,
                            *kind,
                            namespace,
                            &kube::Error::Api(status),
                        ));
                    }
                };
                if let Some(v) = &object.metadata.resource_version {
                    version.clone_from(v);
                }
                let Some(name) = &object.metadata.name else {
                    continue;
                };
                let Some(promotions) = self.objects.get(name) else {
                    continue;
                };
                let gist = if gone { None } else { Gist::of(*kind, &object) };
                if seen.get(name) != gist.as_ref() {
                    match gist {
                        Some(gist) => seen.insert(name.clone(), gist),
                        None => seen.remove(name),
                    };
                    (self.ring)(promotions.clone());
                }
            }
            // Ended by its timeout: watch on. One that ends at once is not hammered.
            if started.elapsed() < Duration::from_secs(1) {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn application(revision: &str, health: &str, message: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": { "name": "app-dev", "namespace": "argocd" },
            "status": {
                "sync": { "status": "Synced", "revision": revision },
                "health": { "status": health, "message": message },
                "operationState": { "phase": "Succeeded", "message": message, "finishedAt": "2026-11-20T10:00:00Z" }
            }
        }))
        .unwrap()
    }

    /// A pass is rung when what it acts on changes — the revision, the kind of state, when
    /// it turned healthy — and not for the controller's progress messages.
    #[test]
    fn only_what_a_pass_acts_on_rings() {
        let gist = |revision, health, message| {
            Gist::of(Kind::Application, &application(revision, health, message)).unwrap()
        };
        let before = gist("aaa", "Progressing", "waiting for rollout");
        assert_eq!(before, gist("aaa", "Progressing", "2 of 3 updated"));
        assert_ne!(before, gist("aaa", "Healthy", "waiting for rollout"));
        assert_ne!(before, gist("aaa", "Degraded", "waiting for rollout"));
        assert_ne!(before, gist("bbb", "Progressing", "waiting for rollout"));
    }

    /// Each object a verify names is watched in its list, for every promotion it verifies.
    #[test]
    fn concerns_gather_the_promotions_of_each_object() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rules.yaml"),
            "apiVersion: tagpromoter.io/v1alpha1
kind: Settings
spec: { git: { url: 'file:///tmp/x' } }
---
apiVersion: tagpromoter.io/v1alpha1
kind: Promotion
metadata: { name: app }
spec:
  image: r.example.com/app
  environments:
    - { name: dev, policy: { semver: '*' }, target: { kustomize: { file: a.yaml } }, verify: { argocd: { application: dev } } }
---
apiVersion: tagpromoter.io/v1alpha1
kind: Promotion
metadata: { name: web }
spec:
  image: r.example.com/web
  environments:
    - { name: dev, policy: { semver: '*' }, target: { kustomize: { file: b.yaml } }, verify: { argocd: { application: dev } } }
    - { name: prod, policy: { semver: '*' }, target: { kustomize: { file: c.yaml } } }
",
        )
        .unwrap();
        let rules = crate::rules::load_dir(dir.path()).unwrap();
        let concerns = concerns(&rules);
        assert_eq!(concerns.len(), 1, "{concerns:?}");
        let promotions: Vec<&String> = concerns.values().flatten().collect();
        assert_eq!(promotions, ["app", "web"]);
    }
}
