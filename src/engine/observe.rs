//! Observe: everything a pass decides from, gathered concurrently and with a deadline.
//! Each watched image's tags are listed once; the GitOps repository is read through
//! [`Repo::snapshot`] (every target at the tip and its history, as far back as the
//! decisions need: see `reaches_far_enough`); each history is turned into an
//! environment's timeline (with the digests that ran) and its hold-bearing events; then the
//! creation times `newestBuild` needs are fetched, each at most once.
//!
//! It must not decide: it only gathers, and a registry that fails or hangs costs only its
//! own images (their entry holds the error).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gix::ObjectId;
use jiff::Timestamp;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::holds::{self, Event};
use crate::gitops::sightings::Sightings;
use crate::gitops::{GitError, Repo, TargetHistory, TargetQuery};
use crate::image::{Depth, Digest, ImageFacts, Repository, Tag};
use crate::policy::{Change, Hold, Timeline};
use crate::registry::{Registry, RegistryError, TagList};
use crate::rules::{Destination, Environment, Identity, Policy, Promotion, Rules};

/// A promotion and one of its environments.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnvKey {
    /// The promotion's name.
    pub promotion: String,
    /// The environment's name.
    pub environment: String,
}

impl EnvKey {
    /// The key of `env` in `p`.
    pub fn of(p: &Promotion, env: &Environment) -> Self {
        Self {
            promotion: p.name.clone(),
            environment: env.name.clone(),
        }
    }
}

impl std::fmt::Display for EnvKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.promotion, self.environment)
    }
}

/// What the GitOps repository says about one environment.
#[derive(Debug, Clone)]
pub struct EnvState {
    /// The tag its target holds at the tip (the file's raw text), or why it cannot be read.
    pub current: Result<Option<String>, GitError>,
    /// The digest its target pins beside that tag at the tip, if it pins one: that is
    /// what runs, whatever the tag now names.
    pub pinned: Option<crate::image::Digest>,
    /// The values its target held over time.
    pub timeline: Timeline,
    /// The commits that bear on holds (a person's changes, our records), oldest first.
    pub events: Vec<Event>,
    /// Whether the history read reaches back as far as its own holds need: a reset (the
    /// bot's own write, a release, the target's creation) or the repository's first commit
    /// (a shallow mirror, or a history longer than a walk may go, can leave it short: then
    /// nothing is decided).
    pub complete: bool,
    /// Whether the history read starts where the repository's does (the timeline's first
    /// value is a change, not just what the target held where reading stopped).
    pub from_start: bool,
    /// The newest commits that set its target's value or carry our record for it, newest
    /// first (at most [`RECENT`]).
    pub recent: Vec<EnvCommit>,
    /// Why when its changes landed could not be told (the forge that merged its pull
    /// requests failed), if so: what soaked here is then unknown.
    pub landing_unknown: Option<crate::forge::ForgeError>,
}

impl EnvState {
    /// This state once the pass's own bump to `tag` (`digest`) landed as `commit` at
    /// `now`: its target holds the tag from then.
    pub fn landed(&mut self, tag: &Tag, digest: Option<Digest>, commit: &str, now: Timestamp) {
        self.current = Ok(Some(tag.to_string()));
        self.pinned = None;
        self.timeline.changes.push(Change {
            since: now,
            value: Some(tag.to_string()),
            digest,
            rollback: false,
            commit: Some(commit.to_string()),
            ours: true,
            seen: None,
            resumed: None,
        });
    }

    /// When its current value was set, if the history read shows it.
    pub fn set_at(&self) -> Option<Timestamp> {
        let real = if self.from_start { 0 } else { 1 };
        self.timeline.changes.get(real..)?.last().map(|c| c.since)
    }

    /// From when on every residency's start is known: `None` for a history read from its
    /// start; else its first change after where reading stopped (`Timestamp::MAX` when
    /// there is none).
    pub fn known_since(&self) -> Option<Timestamp> {
        if self.from_start {
            return None;
        }
        Some(
            self.timeline
                .changes
                .get(1)
                .map_or(Timestamp::MAX, |c| c.since),
        )
    }

    /// How far back `env`'s upstream residencies count: to when its value was set, and
    /// at least over the soak. A tag the upstream stopped running before then had its
    /// chance when the value was set. `None`: since the beginning.
    pub(crate) fn horizon(&self, soak: jiff::SignedDuration, now: Timestamp) -> Option<Timestamp> {
        let soak_start = now.checked_sub(soak).ok()?;
        Some(self.set_at().map_or(soak_start, |t| t.min(soak_start)))
    }
}

/// Whether the history read from the destinations `here` accepts reaches back as far as
/// every decision needs: each of their environments' own history complete (with `from`,
/// back to the commit that set its value), and each upstream environment of theirs known
/// (with its residencies' starts) back to its downstream's horizon, wherever that
/// downstream writes (when `states` holds it). A fresh cache that reads this far decides
/// as a warm one.
pub(crate) fn reaches_far_enough(
    rules: &Rules,
    states: &[&HashMap<EnvKey, EnvState>],
    now: Timestamp,
    here: &dyn Fn(&Destination) -> bool,
) -> bool {
    // The first map that knows an environment says (layered, not merged into a copy).
    let state_of = |key: &EnvKey| states.iter().find_map(|m| m.get(key));
    rules.promotions.iter().all(|p| {
        p.environments.iter().all(|env| {
            let up = p.upstream_of(env);
            let up_here = up.is_some_and(|up| here(&up.destination));
            // Most environments of a fleet write elsewhere: no lookup for them.
            if !here(&env.destination) && !up_here {
                return true;
            }
            let state = state_of(&EnvKey::of(p, env));
            if here(&env.destination) {
                let Some(state) = state else {
                    return false;
                };
                // Its horizon starts where its value was set: that commit must be read.
                let set_known = env.from.is_none() || state.from_start || state.set_at().is_some();
                if !state.complete || !set_known {
                    return false;
                }
            }
            let Some(up) = up.filter(|_| up_here) else {
                return true;
            };
            let Some(state) = state else {
                // Its downstream is read elsewhere, and not yet.
                return true;
            };
            let upstream = state_of(&EnvKey::of(p, up));
            match (
                upstream.and_then(EnvState::known_since),
                state.horizon(env.soak, now),
            ) {
                (None, _) => upstream.is_some(),
                (Some(known), Some(horizon)) => known <= horizon,
                (Some(_), None) => false,
            }
        })
    })
}

/// How many of an environment's commits the board shows.
pub const RECENT: usize = 3;

/// A commit that changed an environment.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvCommit {
    /// Its id (hex).
    pub id: String,
    /// Committer time.
    pub time: Timestamp,
    /// The author's name.
    pub author: String,
    /// The message's first line.
    pub subject: String,
}

/// Everything a pass decides from.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Each destination's tip, as read.
    pub tips: BTreeMap<Destination, ObjectId>,
    /// The destinations that could not be read, and why: their environments fail alone.
    pub unreadable: BTreeMap<Destination, GitError>,
    /// Each watched image's tags, or why they could not be listed.
    pub images: HashMap<Repository, Result<Arc<TagList>, RegistryError>>,
    /// Facts of the tags some gate needs, per image.
    pub facts: HashMap<Repository, HashMap<Tag, ImageFacts>>,
    /// Per environment, what the repository says.
    pub environments: HashMap<EnvKey, EnvState>,
    /// The files at each destination's tip, for rendering diffs (`None`: absent or
    /// unreadable).
    pub files: HashMap<(Destination, PathBuf), Option<String>>,
    /// Per environment with `verify:`, whether its value runs.
    pub deployments: HashMap<EnvKey, super::verify::Deployment>,
    /// Per environment with `verify:` whose controller keeps a history (Argo CD), when each
    /// of its timeline's values was first rolled out, by the change's index (`None`: the
    /// history does not reach it).
    pub rolled_out: HashMap<EnvKey, Vec<Option<super::verify::RolledOut>>>,
    /// Per environment with `verify:`, the commit its deployment was judged against (that
    /// of its value as read, before the pass's own bumps).
    pub judged: HashMap<EnvKey, String>,
    /// Per verified environment another takes tags from, whose value is not running
    /// healthy: which of its changes its controller runs.
    pub running: HashMap<EnvKey, super::verify::Running>,
    /// Each destination's ledger of the bot's sightings of upstream changes (for the soaks
    /// of the environments there), and the commit it was read from (`None`: none yet).
    pub sightings: HashMap<Destination, (Sightings, Option<ObjectId>)>,
}

impl Observed {
    /// What the environment `env` takes its tags from (`from`) ran over time, back to
    /// `env`'s horizon (when its own value was set, and at least over the soak), its
    /// rollbacks marked (by the upstream's own policy).
    pub fn upstream(&self, p: &Promotion, env: &Environment, now: Timestamp) -> Option<Timeline> {
        let up = p.upstream_of(env)?;
        let state = self.environments.get(&EnvKey::of(p, up))?;
        let horizon = self
            .environments
            .get(&EnvKey::of(p, env))
            .and_then(|s| s.horizon(env.soak, now));
        let no_facts = HashMap::new();
        let facts = self.facts.get(&p.image).unwrap_or(&no_facts);
        let rollbacks = holds::rollbacks(&state.events, &p.tag_policy(up), &|t| {
            crate::image::created_of(facts, t)
        });
        let mut timeline = state.timeline.clone();
        for c in &mut timeline.changes {
            c.rollback = rollbacks.contains(&c.since);
        }
        // By clocks nobody upstream sets.
        let ledger = self.sightings.get(&env.destination).map(|(l, _)| l);
        super::sightings::floor(&mut timeline, ledger, (p, up, env), state.from_start, now);
        // Verified upstream, its values run from their rollouts on, and only healthy.
        if up.verify.is_some() {
            let name = super::sightings::upstream_name(p, up);
            let seen = |c: &crate::policy::Change| {
                let rollout = ledger?.rollout(&name, c.commit.as_deref()?)?;
                Some(rollout.healthy)
            };
            let dates = self.rolled_out.get(&EnvKey::of(p, up));
            super::verify::date_earlier(&mut timeline, dates.map_or(&[], Vec::as_slice), &seen);
        }
        // Residencies that ended before the horizon do not count.
        let in_force = |timeline: &Timeline| {
            horizon.map_or(0, |h| {
                timeline
                    .changes
                    .iter()
                    .rposition(|c| c.since <= h)
                    .unwrap_or(0)
            })
        };
        // (By the dates read: where the rollouts move them, a fresh read, which stops by
        // the dates read, could not tell what was in force.)
        let before = in_force(&timeline);
        if let Some(deployment) = self.deployments.get(&EnvKey::of(p, up)) {
            let running = self.running.get(&EnvKey::of(p, up));
            deployment.apply(&mut timeline, running, before, now);
        }
        timeline
            .changes
            .drain(..before.min(timeline.changes.len().saturating_sub(1)));
        Some(timeline)
    }

    /// The hold on `env` read from its history, active or expired; `newestBuild` orders by
    /// the creation times observed.
    pub fn hold(&self, p: &Promotion, env: &Environment) -> Option<Hold> {
        let state = self.environments.get(&EnvKey::of(p, env))?;
        let no_facts = HashMap::new();
        let facts = self.facts.get(&p.image).unwrap_or(&no_facts);
        holds::hold_after(&state.events, &p.tag_policy(env), &|t| {
            crate::image::created_of(facts, t)
        })
    }
}

/// Gather what `rules` need. Tag lists start at once, beside the repository's fetch; each
/// image's facts are fetched as soon as its own list (and the repository) is in, so an image
/// whose registry hangs holds up no other.
pub async fn observe(
    rules: &Rules,
    registry: &Arc<Registry>,
    repos: &BTreeMap<Destination, Repo>,
    options: &super::Options,
    now: Timestamp,
) -> Result<Observed, GitError> {
    let deadline = options.registry_deadline;
    registry.new_pass().await;
    let until = Instant::now() + deadline;
    let images: BTreeSet<Repository> = rules.promotions.iter().map(|p| p.image.clone()).collect();
    let total = images.len();
    let report = |listed| {
        if let Some(p) = &options.progress {
            let _ = p.send(super::Progress {
                listed,
                images: total,
            });
        }
    };
    report(0);
    // The listers stop when the observation does (a pass dropped mid-way lists no more).
    let (mut listed, _listers) = list_tags(registry, images, until, deadline);
    let read = read_repositories(rules, repos, now).await?;
    let mut observed = Observed {
        tips: read.tips,
        unreadable: read.unreadable,
        images: HashMap::new(),
        facts: HashMap::new(),
        environments: read.environments,
        files: read.files,
        deployments: HashMap::new(),
        rolled_out: HashMap::new(),
        judged: HashMap::new(),
        running: HashMap::new(),
        sightings: read.sightings,
    };
    // Each image's promotions, found once (not by a scan of every promotion per image).
    let mut watching: HashMap<&Repository, Vec<&Promotion>> = HashMap::new();
    for p in &rules.promotions {
        watching.entry(&p.image).or_default().push(p);
    }
    let mut inspections = JoinSet::new();
    while let Some((image, result)) = listed.recv().await {
        match &result {
            Ok(tags) => {
                let promotions = watching.get(&image).map_or(&[][..], Vec::as_slice);
                for tag in tags_needing_facts(promotions, &tags.tags, &observed.environments) {
                    let registry = Arc::clone(registry);
                    let image = image.clone();
                    inspections.spawn(async move {
                        let got =
                            tokio::time::timeout_at(until, registry.facts(&image, &tag)).await;
                        let result =
                            got.unwrap_or_else(|_| Err(timed_out(&image, "inspecting", deadline)));
                        (image, tag, result)
                    });
                }
            }
            Err(e) => tracing::warn!(image = %image, error = %e, "cannot list tags"),
        }
        observed.images.insert(image, result);
        report(observed.images.len());
    }
    while let Some(joined) = inspections.join_next().await {
        let Ok((image, tag, result)) = joined else {
            continue;
        };
        match result {
            Ok(facts) => {
                observed.facts.entry(image).or_default().insert(tag, facts);
            }
            Err(e) => {
                tracing::warn!(image = %image, tag = %tag, error = %e, "cannot read the image's metadata; gates that need it treat the tag as not inspected")
            }
        }
    }
    Ok(observed)
}

/// An image and its tag list (or why there is none).
type Listed = (Repository, Result<Arc<TagList>, RegistryError>);

/// Every image's tag list, as each comes in. Each registry host lists its images on its own
/// (one that hangs holds up no other), a few more at once than its `concurrency` lets
/// through: a fleet's 10,000 images are not 10,000 requests waiting in memory at once.
/// Dropping the returned set stops them.
fn list_tags(
    registry: &Arc<Registry>,
    images: BTreeSet<Repository>,
    until: Instant,
    deadline: Duration,
) -> (tokio::sync::mpsc::UnboundedReceiver<Listed>, JoinSet<()>) {
    use futures_util::StreamExt as _;
    let mut by_host: BTreeMap<String, Vec<Repository>> = BTreeMap::new();
    for image in images {
        by_host
            .entry(image.split().0.to_string())
            .or_default()
            .push(image);
    }
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let mut listers = JoinSet::new();
    for images in by_host.into_values() {
        let (registry, sender) = (Arc::clone(registry), sender.clone());
        let at_once = images
            .first()
            .map_or(1, |image| 2 * registry.concurrency(image));
        listers.spawn(async move {
            let registry = &registry;
            let mut lists = futures_util::stream::iter(images)
                .map(|image| async move {
                    let listed = tokio::time::timeout_at(until, registry.tags(&image)).await;
                    let result = match listed {
                        Ok(r) => r,
                        Err(_) => Err(timed_out(&image, "listing tags of", deadline)),
                    };
                    (image, result)
                })
                .buffer_unordered(at_once);
            while let Some(done) = lists.next().await {
                if sender.send(done).is_err() {
                    break;
                }
            }
        });
    }
    (receiver, listers)
}

/// Fetch the facts of `wanted` tags not observed yet to their depth: one round of what the
/// decisions ask for (`decide::facts_wanted`: candidates that soaked, the tag to write).
pub async fn inspect_more(
    registry: &Arc<Registry>,
    observed: &mut Observed,
    wanted: Vec<(Repository, Tag, Depth)>,
    deadline: Duration,
) {
    let until = Instant::now() + deadline;
    let mut tasks = JoinSet::new();
    for (image, tag, depth) in wanted {
        let known = observed
            .facts
            .get(&image)
            .and_then(|f| f.get(&tag))
            .is_some_and(|f| f.depth >= depth);
        if known {
            continue;
        }
        let registry = Arc::clone(registry);
        tasks.spawn(async move {
            let got = tokio::time::timeout_at(until, registry.facts_to(&image, &tag, depth)).await;
            (image, tag, got)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((image, tag, Ok(Ok(facts)))) => {
                observed.facts.entry(image).or_default().insert(tag, facts);
            }
            Ok((image, tag, _)) => {
                tracing::warn!(image = %image, tag = %tag, "cannot read the image's metadata; its digest and creation time stay unknown");
            }
            Err(_) => {}
        }
    }
}

fn timed_out(image: &Repository, step: &str, deadline: Duration) -> RegistryError {
    let limit = format!("the pass's registry deadline of {}s", deadline.as_secs());
    RegistryError::timed_out(image, step, &limit)
}

/// Repositories read at once.
const CONCURRENT_READS: usize = 4;

/// What the repositories say.
#[derive(Default)]
struct RepoRead {
    tips: BTreeMap<Destination, ObjectId>,
    unreadable: BTreeMap<Destination, GitError>,
    environments: HashMap<EnvKey, EnvState>,
    files: HashMap<(Destination, PathBuf), Option<String>>,
    sightings: HashMap<Destination, (Sightings, Option<ObjectId>)>,
}

/// Read every destination, concurrently, each as far back as its own environments need;
/// then read again, deeper, the destinations whose environments feed one written
/// elsewhere and do not reach back over its soak yet. A destination that cannot be read
/// fails only its own environments; when none can be read, the pass fails.
async fn read_repositories(
    rules: &Rules,
    repos: &BTreeMap<Destination, Repo>,
    now: Timestamp,
) -> Result<RepoRead, GitError> {
    let wanted = rules.destinations();
    // Reading a history is CPU work on a blocking thread: a few at once keep the cores
    // busy, more only add threads (and their memory) to wait for them.
    let slots = &tokio::sync::Semaphore::new(CONCURRENT_READS);
    let reads = repos
        .iter()
        .filter(|(d, _)| wanted.contains(*d))
        .map(|(d, repo)| async move {
            let _slot = slots.acquire().await;
            let others = HashMap::new();
            (d, read_destination(rules, d, repo, &others, now).await)
        });
    let mut read = RepoRead::default();
    read.environments
        .reserve(rules.promotions.iter().map(|p| p.environments.len()).sum());
    let mut last_error = None;
    for (d, result) in futures_util::future::join_all(reads).await {
        match result {
            Ok((tip, environments, files)) => {
                // A ledger that cannot be read counts every change as first seen now.
                let ledger = repos.get(d).map(Repo::sightings).transpose();
                match ledger {
                    Ok(Some(ledger)) => {
                        read.sightings.insert(d.clone(), ledger);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(repository = %d, error = %e, "cannot read the bot's sightings; changes upstream count as seen now");
                    }
                }
                read.tips.insert(d.clone(), tip);
                read.environments.extend(environments);
                read.files
                    .extend(files.into_iter().map(|(p, t)| ((d.clone(), p), t)));
            }
            Err(e) => {
                tracing::error!(repository = %d, error = %e, "cannot read the GitOps repository");
                last_error = Some(e.clone());
                read.unreadable.insert(d.clone(), e);
            }
        }
    }
    if read.tips.is_empty()
        && let Some(e) = last_error
    {
        return Err(e);
    }
    // Upstreams read with what their downstreams (elsewhere) now say about their horizons.
    let readable: Vec<(&Destination, &Repo)> = repos
        .iter()
        .filter(|(d, _)| read.tips.contains_key(*d))
        .collect();
    for (d, repo) in readable {
        if reaches_far_enough(rules, &[&read.environments], now, &|x| x == d) {
            continue;
        }
        let others: HashMap<EnvKey, EnvState> = rules
            .promotions
            .iter()
            .flat_map(|p| p.environments.iter().map(move |e| (p, e)))
            .filter(|(_, e)| e.destination != *d)
            .filter_map(|(p, e)| {
                let key = EnvKey::of(p, e);
                let state = read.environments.get(&key)?.clone();
                Some((key, state))
            })
            .collect();
        match read_destination(rules, d, repo, &others, now).await {
            Ok((tip, environments, _)) => {
                read.tips.insert(d.clone(), tip);
                read.environments.extend(environments);
            }
            Err(e) => {
                read.tips.remove(d);
                read.unreadable.insert(d.clone(), e);
            }
        }
    }
    Ok(read)
}

/// One destination's environments, as they say.
type DestinationRead = (
    ObjectId,
    HashMap<EnvKey, EnvState>,
    HashMap<PathBuf, Option<String>>,
);

/// Read the targets of the environments writing to `destination`, and their history,
/// through [`Repo::snapshot`], as far back as the decisions need (`others`: the
/// environments read elsewhere, whose horizons this one's upstreams must reach).
async fn read_destination(
    rules: &Rules,
    destination: &Destination,
    repo: &Repo,
    others: &HashMap<EnvKey, EnvState>,
    now: Timestamp,
) -> Result<DestinationRead, GitError> {
    let keys: Vec<(EnvKey, &Promotion, &Environment)> = rules
        .promotions
        .iter()
        .flat_map(|p| p.environments.iter().map(move |e| (EnvKey::of(p, e), p, e)))
        .filter(|(_, _, e)| e.destination == *destination)
        .collect();
    // Which targets more than one identity writes (branch-per-environment layouts, one
    // file in several repositories).
    let mut writers: HashMap<String, BTreeSet<Identity>> = HashMap::new();
    for p in &rules.promotions {
        for e in &p.environments {
            if let Some(id) = rules.settings.identity(&e.destination) {
                writers.entry(p.target_id(e)).or_default().insert(id);
            }
        }
    }
    let identity = rules
        .settings
        .identity(destination)
        .unwrap_or_else(|| Identity {
            repository: destination.repository.clone(),
            branch: destination.branch.clone(),
        });
    let queries: Vec<TargetQuery> = keys
        .iter()
        .map(|(_, p, env)| {
            let id = p.target_id(env);
            TargetQuery {
                file: env.target.file().to_path_buf(),
                target: p.manifest_target(env),
                shared: writers.get(&id).is_some_and(|w| w.len() > 1),
                id,
                names: (p.name.clone(), env.name.clone()),
                others: env
                    .also
                    .iter()
                    .map(|t| (t.file().to_path_buf(), p.manifest_target_of(env, t)))
                    .collect(),
                identity: identity.clone(),
            }
        })
        .collect();
    // What `enough` works out for the last snapshot is what the pass decides from.
    let mut environments = HashMap::new();
    let snapshot = repo
        .snapshot(Arc::new(queries), |s| {
            environments = keys
                .iter()
                .zip(&s.targets)
                .map(|((key, _, _), t)| (key.clone(), env_state(t)))
                .collect();
            reaches_far_enough(rules, &[&environments, others], now, &|d| d == destination)
        })
        .await?;
    let tip = snapshot.tip;
    // Taken when nobody keeps the snapshot (`once`), copied when a worker does.
    let files = match Arc::try_unwrap(snapshot) {
        Ok(read) => read.files.into_iter().map(|(p, t)| (p, t.ok())).collect(),
        Err(kept) => kept
            .files
            .iter()
            .map(|(p, t)| (p.clone(), t.as_ref().ok().cloned()))
            .collect(),
    };
    Ok((tip, environments, files))
}

/// What one target's history says about its environment.
pub(crate) fn env_state(history: &TargetHistory) -> EnvState {
    // Sized to the history (a fleet keeps 30,000 of these at once; growing from empty
    // would leave most of each vector unused).
    let mut changes: Vec<Change> = Vec::with_capacity(history.entries.len());
    let mut events = Vec::with_capacity(history.entries.len());
    // The last value read (`None` before any): what a change moved from.
    let mut before: Option<Option<String>> = None;
    for e in &history.entries {
        let mut moved = None;
        // A target that cannot be read says nothing about what ran: skipped.
        if let Some(value) = e.value.as_ref().filter(|v| v.readable) {
            // The digest that ran: pinned in the file, else the one our record wrote.
            let recorded = e
                .record
                .as_ref()
                .filter(|r| {
                    r.to.is_some() && value.tag.as_deref() == r.to.as_ref().map(|t| t.as_str())
                })
                .and_then(|r| r.digest.clone());
            let digest = value
                .digest
                .as_deref()
                .and_then(|d| Digest::new(d).ok())
                .or(recorded);
            changes.push(Change {
                since: e.time,
                value: value.tag.clone(),
                digest,
                // Marked by `Observed::upstream`, which knows the policy's order.
                rollback: false,
                commit: Some(e.id.to_string()),
                ours: e.record.is_some(),
                seen: None,
                resumed: None,
            });
            // The first value of a history read from where reading stopped is what the
            // target held then, not a change.
            let first = before.is_none() && !history.from_start;
            if !first && before.as_ref() != Some(&value.tag) {
                moved = Some((before.clone().flatten(), value.tag.clone()));
            }
            before = Some(value.tag.clone());
        }
        if moved.is_some() || e.record.is_some() {
            events.push(Event {
                time: e.time,
                author: e.author.clone(),
                record: e.record.clone(),
                moved,
            });
        }
    }
    // Holds start over at a reset; one must be in the history read, or its start.
    let complete = history.from_start || events.iter().any(Event::resets);
    let mut recent = Vec::with_capacity(history.entries.len().min(RECENT));
    recent.extend(
        history
            .entries
            .iter()
            .rev()
            .filter(|e| e.record.is_some() || e.value.is_some())
            .take(RECENT)
            .map(|e| EnvCommit {
                id: e.id.to_string(),
                time: e.time,
                author: e.author.clone(),
                subject: e.subject.clone(),
            }),
    );
    EnvState {
        current: history.current.clone().map(|v| v.tag),
        pinned: history
            .current
            .as_ref()
            .ok()
            .and_then(|v| v.digest.as_deref())
            .and_then(|d| crate::image::Digest::new(d).ok()),
        timeline: Timeline { changes },
        events,
        complete,
        from_start: history.from_start,
        recent,
        landing_unknown: None,
    }
}

/// The tags of an image whose creation times `newestBuild` orders by, fetched before
/// deciding: every tag its filters keep, the tag each environment runs, and the values a
/// person's changes moved between (a hand-made rollback is told by them). The facts other
/// gates need are fetched by the engine once a tag could win ([`super::decide::facts_wanted`]).
fn tags_needing_facts(
    promotions: &[&Promotion],
    tags: &[Tag],
    environments: &HashMap<EnvKey, EnvState>,
) -> BTreeSet<Tag> {
    let mut wanted = BTreeSet::new();
    for p in promotions {
        for env in &p.environments {
            if !matches!(env.policy, Policy::NewestBuild(_)) {
                continue;
            }
            let selection = p.tag_policy(env).select(tags, &|_| None);
            wanted.extend(
                selection
                    .rejected
                    .iter()
                    .filter(|(_, r)| *r == crate::policy::Rejection::NoCreationTime)
                    .map(|(t, _)| t.clone()),
            );
            let Some(state) = environments.get(&EnvKey::of(p, env)) else {
                continue;
            };
            let current = state.current.as_ref().ok().cloned().flatten();
            let moved = state
                .events
                .iter()
                .filter(|e| e.record.is_none())
                .filter_map(|e| e.moved.as_ref())
                .flat_map(|(before, after)| [before.clone(), after.clone()]);
            wanted.extend(
                moved
                    .chain([current])
                    .flatten()
                    .filter_map(|t| Tag::new(&t).ok())
                    .filter(|t| tags.contains(t)),
            );
        }
    }
    wanted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Change;

    fn at(hours: i64) -> Timestamp {
        "2026-11-20T10:00:00Z".parse::<Timestamp>().unwrap()
            + jiff::SignedDuration::from_hours(hours)
    }

    /// A complete state whose history starts at `from_start` (else where reading stopped),
    /// with its values set at `changes` (hours from now).
    fn state(changes: &[i64], from_start: bool) -> EnvState {
        EnvState {
            current: Ok(Some("1.0.0".into())),
            pinned: None,
            timeline: Timeline {
                changes: changes
                    .iter()
                    .map(|&h| Change {
                        since: at(h),
                        value: Some("1.0.0".into()),
                        digest: None,
                        rollback: false,
                        commit: None,
                        ours: false,
                        seen: None,
                        resumed: None,
                    })
                    .collect(),
            },
            events: Vec::new(),
            complete: true,
            from_start,
            recent: Vec::new(),
            landing_unknown: None,
        }
    }

    fn key(environment: &str) -> EnvKey {
        EnvKey {
            promotion: "app".into(),
            environment: environment.into(),
        }
    }

    /// dev writes to the app team's repository, prod (24 h after dev) to `git:`. Reading
    /// the app team's repository is not far enough until dev's history reaches back to
    /// prod's horizon (when prod's value was set, 48 h ago); `git:`'s read never asks for
    /// dev's; and before prod is read at all, dev's own read is enough.
    #[test]
    fn an_upstream_in_another_repository_is_read_back_to_its_downstreams_horizon() {
        let settings = "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: { url: https://git.example.com/platform.git }\n  repositories: [{ name: app-team, url: https://git.example.com/app.git }]\n";
        let promotion = "apiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: { name: app }\nspec:\n  image: ghcr.io/acme/app\n  environments:\n    - { name: dev, repository: app-team, policy: { semver: '^1.0.0' }, target: { helm: { file: dev.yaml, tag: image.tag } } }\n    - { name: prod, from: dev, soak: 24h, policy: { semver: '^1.0.0' }, target: { helm: { file: prod.yaml, tag: image.tag } } }\n";
        let rules = crate::rules::parse_sources(
            std::path::Path::new("rules"),
            &[
                ("settings.yaml".into(), settings.into()),
                ("app.yaml".into(), promotion.into()),
            ],
        )
        .unwrap();
        let app_team = |d: &Destination| d.repository == "app-team";
        let platform = |d: &Destination| d.repository == "default";
        let now = at(0);
        let prod = state(&[-48], true);
        // dev read from where reading stopped: its residencies known from 10 h ago only.
        let short = HashMap::from([
            (key("dev"), state(&[-200, -10], false)),
            (key("prod"), prod.clone()),
        ]);
        assert!(!reaches_far_enough(&rules, &[&short], now, &app_team));
        assert!(reaches_far_enough(&rules, &[&short], now, &platform));
        // Read back to 60 h ago: past prod's horizon.
        let deep = HashMap::from([
            (key("dev"), state(&[-200, -60], false)),
            (key("prod"), prod),
        ]);
        assert!(reaches_far_enough(&rules, &[&deep], now, &app_team));
        // prod not read yet (its repository is read elsewhere): dev's own read is enough.
        let alone = HashMap::from([(key("dev"), state(&[-200, -10], false))]);
        assert!(reaches_far_enough(&rules, &[&alone], now, &app_team));
    }
}
