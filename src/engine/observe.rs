//! Observe: everything a pass decides from, gathered concurrently and with a deadline.
//! Each watched image's tags are listed once; the GitOps branch is fetched and every
//! target read at its tip; the history is walked once for all targets (residencies, holds,
//! our records); then the facts of the tags some gate needs are fetched, each at most once.
//!
//! It must not decide: it only gathers, and a registry that fails or hangs costs only its
//! own images (their entry holds the error).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gix::ObjectId;
use jiff::Timestamp;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::holds::{self, Event};
use crate::gitops::history::History;
use crate::gitops::store::{Batch, Store};
use crate::gitops::{GitError, GitErrorKind, Repo};
use crate::image::{ImageFacts, Repository, Tag};
use crate::manifest;
use crate::policy::{Hold, Timeline};
use crate::registry::{Registry, RegistryError};
use crate::rules::{Environment, Policy, Promotion, Rules};

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
    /// The values its target held over time.
    pub timeline: Timeline,
    /// The commits that bear on holds (a person's changes, our records), oldest first,
    /// back to where no earlier hold can still be in force.
    pub events: Vec<Event>,
    /// Whether the history read reaches back that far (a shallow mirror, or a history
    /// longer than a walk may go, can leave it short: then nothing is decided).
    pub complete: bool,
    /// The newest commits that set its target's value or carry our record for it, newest
    /// first (at most [`RECENT`]).
    pub recent: Vec<EnvCommit>,
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
    /// The branch's tip.
    pub tip: ObjectId,
    /// Each watched image's tags, or why they could not be listed.
    pub images: HashMap<Repository, Result<Vec<Tag>, RegistryError>>,
    /// Facts of the tags some gate needs, per image.
    pub facts: HashMap<Repository, HashMap<Tag, ImageFacts>>,
    /// Per environment, what the repository says.
    pub environments: HashMap<EnvKey, EnvState>,
    /// The files at the tip, for rendering diffs (`None`: absent or unreadable).
    pub files: HashMap<PathBuf, Option<String>>,
}

impl Observed {
    /// What the environment `env` takes its tags from (`from`) ran over time.
    pub fn upstream(&self, p: &Promotion, env: &Environment) -> Option<&Timeline> {
        let from = env.from.as_ref()?;
        self.environments
            .get(&EnvKey {
                promotion: p.name.clone(),
                environment: from.clone(),
            })
            .map(|s| &s.timeline)
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
    repo: &Repo,
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
    let mut listings = JoinSet::new();
    for image in images {
        let registry = Arc::clone(registry);
        listings.spawn(async move {
            let listed = tokio::time::timeout_at(until, registry.tags(&image)).await;
            let result = match listed {
                Ok(r) => r.map(|list| list.tags),
                Err(_) => Err(timed_out(&image, "listing tags of", deadline)),
            };
            (image, result)
        });
    }
    let (tip, read) = read_repository(rules, repo, now).await?;
    let mut observed = Observed {
        tip,
        images: HashMap::new(),
        facts: HashMap::new(),
        environments: read.environments,
        files: read.files,
    };
    let mut inspections = JoinSet::new();
    while let Some(joined) = listings.join_next().await {
        let Ok((image, result)) = joined else {
            continue;
        };
        match &result {
            Ok(tags) => {
                for tag in tags_needing_facts(rules, &image, tags, &observed.environments) {
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

/// Fetch the facts of `wanted` tags not observed yet (the tags a decision would write:
/// their creation time starts the stall clock, their digest goes in the trailer).
pub async fn inspect_more(
    registry: &Arc<Registry>,
    observed: &mut Observed,
    wanted: Vec<(Repository, Tag)>,
    deadline: Duration,
) {
    let until = Instant::now() + deadline;
    let mut tasks = JoinSet::new();
    for (image, tag) in wanted {
        if observed
            .facts
            .get(&image)
            .is_some_and(|f| f.contains_key(&tag))
        {
            continue;
        }
        let registry = Arc::clone(registry);
        tasks.spawn(async move {
            let got = tokio::time::timeout_at(until, registry.facts(&image, &tag)).await;
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

/// What the repository says, read on a blocking thread.
struct RepoRead {
    environments: HashMap<EnvKey, EnvState>,
    files: HashMap<PathBuf, Option<String>>,
    /// When the walk stopped at a boundary: the oldest commit time it reached.
    reach: Option<Timestamp>,
    /// How many commits the walk read.
    walked: usize,
}

/// Fetch, then read every target and the history on a blocking thread. A shallow mirror is
/// deepened, doubling what was read each time, until every environment's history reaches
/// back as far as its decisions need (the commit that set its value or a reset after it,
/// and every soak): a fresh cache decides as a warm one. Doubling keeps the number of
/// fetches logarithmic and each one within git's timeout.
async fn read_repository(
    rules: &Rules,
    repo: &Repo,
    now: Timestamp,
) -> Result<(ObjectId, RepoRead), GitError> {
    let tip = repo.fetch().await?;
    let longest_soak = rules
        .promotions
        .iter()
        .flat_map(|p| p.environments.iter().map(|e| e.soak))
        .max()
        .unwrap_or_default();
    let mut walked = 0;
    loop {
        let store = repo.store().clone();
        let owned = rules.clone();
        let read = tokio::task::spawn_blocking(move || read_environments(&store, tip, &owned));
        let read = read
            .await
            .map_err(|e| GitError::new(GitErrorKind::Local, "reading history", e.to_string()))??;
        let soak_too_short = read
            .reach
            .is_some_and(|oldest| now.duration_since(oldest) < longest_soak);
        let incomplete = read.environments.values().any(|e| !e.complete);
        // A walk that grew no longer (the cap on commits a walk reads) cannot be helped.
        let grew = read.walked > walked;
        walked = read.walked;
        if (soak_too_short || incomplete) && grew && repo.is_shallow() {
            let by = u32::try_from(read.walked).unwrap_or(u32::MAX).max(1);
            repo.deepen(by).await?;
            continue;
        }
        return Ok((tip, read));
    }
}

/// Per environment: current value, timeline, hold, last record; the target files' texts at
/// the tip; and (when the walk stopped at a boundary) the oldest time it reached.
fn read_environments(store: &Store, tip: ObjectId, rules: &Rules) -> Result<RepoRead, GitError> {
    let history = History::walk(store, tip)?;
    let commits = history.commits();
    let reach = history
        .truncated
        .then(|| commits.last().map(|c| c.info.time))
        .flatten();
    let paths = rules.target_files();
    let changes = history.file_changes(store, &paths)?;
    let batch = store.batch();
    // Each target file read once at the tip; every environment on it reads from here.
    let mut texts: HashMap<PathBuf, Result<String, GitError>> = HashMap::new();
    for path in &paths {
        texts.insert(path.clone(), text_at(&batch, tip, path));
    }
    let mut blobs: HashMap<ObjectId, Option<String>> = HashMap::new();
    let mut envs = HashMap::new();
    for p in &rules.promotions {
        for env in &p.environments {
            let key = EnvKey::of(p, env);
            let file = env.target.file();
            let target = p.manifest_target(env);
            let step = || format!("reading {}", file.display());
            let current = match texts.get(file) {
                Some(Ok(text)) => manifest::read(text, &target)
                    .map(|c| c.tag)
                    .map_err(|e| GitError::new(GitErrorKind::Target, &step(), e.to_string())),
                Some(Err(e)) => Err(e.clone()),
                None => Err(GitError::new(GitErrorKind::Local, &step(), "not read")),
            };
            // The target's value at each commit that changed its file, oldest first.
            let mut values: Vec<(usize, Option<String>)> = Vec::new();
            for change in changes.get(file).into_iter().flatten() {
                let value = match change.blob {
                    None => None,
                    Some(blob) => {
                        let text = blobs
                            .entry(blob)
                            .or_insert_with(|| {
                                batch
                                    .blob(blob)
                                    .ok()
                                    .and_then(|b| String::from_utf8(b).ok())
                            })
                            .clone();
                        text.and_then(|t| manifest::read(&t, &target).ok().and_then(|c| c.tag))
                    }
                };
                if values.last().is_none_or(|(_, v)| *v != value) {
                    values.push((change.commit, value));
                }
            }
            let timeline = Timeline {
                changes: values
                    .iter()
                    .map(|(i, v)| (commits[*i].info.time, v.clone()))
                    .collect(),
            };
            // Our records for this target: those naming it, and (written before the
            // Target trailer) those under any name a record that moved this target bore.
            let target_id = p.target_id(env);
            let mut names = BTreeSet::from([(p.name.as_str(), env.name.as_str())]);
            for pair in values.windows(2) {
                if let Some(r) = &commits[pair[1].0].record
                    && r.target.is_none()
                    && pair[1].1.as_deref() == Some(r.to.as_str())
                {
                    names.insert((r.promotion.as_str(), r.environment.as_str()));
                }
            }
            let ours = |i: usize| {
                commits[i].record.as_ref().filter(|r| match &r.target {
                    Some(t) => *t == target_id,
                    None => names.contains(&(r.promotion.as_str(), r.environment.as_str())),
                })
            };
            let mut moved: HashMap<usize, (Option<String>, Option<String>)> = HashMap::new();
            for pair in values.windows(2) {
                moved.insert(pair[1].0, (pair[0].1.clone(), pair[1].1.clone()));
            }
            // On a history read to its first commit, the first value is a change too.
            if !history.truncated
                && let Some((first, Some(value))) = values.first()
            {
                moved.insert(*first, (None, Some(value.clone())));
            }
            let mut events: Vec<Event> = (0..commits.len())
                .rev()
                .filter(|i| moved.contains_key(i) || ours(*i).is_some())
                .map(|i| Event {
                    time: commits[i].info.time,
                    author: commits[i].info.author.clone(),
                    record: ours(i).cloned(),
                    moved: moved.get(&i).cloned(),
                })
                .collect();
            // What came before the last reset cannot hold any more.
            if let Some(last) = events.iter().rposition(Event::resets) {
                events.drain(..last);
            }
            let complete = !history.truncated || events.first().is_some_and(Event::resets);
            let recent = (0..commits.len())
                .filter(|i| values.iter().any(|(c, _)| c == i) || ours(*i).is_some())
                .take(RECENT)
                .map(|i| EnvCommit {
                    id: commits[i].id.to_string(),
                    time: commits[i].info.time,
                    author: commits[i].info.author.clone(),
                    subject: commits[i]
                        .info
                        .message
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                })
                .collect();
            envs.insert(
                key,
                EnvState {
                    current,
                    timeline,
                    events,
                    complete,
                    recent,
                },
            );
        }
    }
    let files = texts.into_iter().map(|(p, t)| (p, t.ok())).collect();
    Ok(RepoRead {
        environments: envs,
        files,
        reach,
        walked: commits.len(),
    })
}

/// The text of `file` at `tip`, or why it cannot be a target.
fn text_at(store: &Batch, tip: ObjectId, file: &std::path::Path) -> Result<String, GitError> {
    let step = format!("reading {}", file.display());
    match store.read(tip, file)? {
        None => Err(GitError::new(
            GitErrorKind::Target,
            &step,
            "the file does not exist on the branch",
        )),
        Some(f) => String::from_utf8(f.content)
            .map_err(|_| GitError::new(GitErrorKind::Target, &step, "is not UTF-8 text")),
    }
}

/// The tags of `image` whose creation times `newestBuild` orders by, fetched before
/// deciding: every tag its filters keep, the tag each environment runs, and the values a
/// person's changes moved between (a hand-made rollback is told by them). The facts other
/// gates need are fetched by the engine once a tag could win ([`super::decide::facts_wanted`]).
fn tags_needing_facts(
    rules: &Rules,
    image: &Repository,
    tags: &[Tag],
    environments: &HashMap<EnvKey, EnvState>,
) -> BTreeSet<Tag> {
    let mut wanted = BTreeSet::new();
    for p in rules.promotions.iter().filter(|p| p.image == *image) {
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
