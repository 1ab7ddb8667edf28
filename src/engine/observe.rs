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
    /// A hold, active or expired.
    pub hold: Option<Hold>,
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
}

/// The most candidates inspected per environment when gates need facts.
const MAX_INSPECTED: usize = 25;

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
}

/// Fetch, then read every target and the history on a blocking thread; deepen a shallow
/// mirror once when a soak reaches past its boundary.
async fn read_repository(
    rules: &Rules,
    repo: &Repo,
    now: Timestamp,
) -> Result<(ObjectId, RepoRead), GitError> {
    let tip = repo.fetch().await?;
    let mut deepened = false;
    loop {
        let store = repo.store().clone();
        let owned = rules.clone();
        let read = tokio::task::spawn_blocking(move || read_environments(&store, tip, &owned));
        let read = read
            .await
            .map_err(|e| GitError::new(GitErrorKind::Local, "reading history", e.to_string()))??;
        let longest_soak = rules
            .promotions
            .iter()
            .flat_map(|p| p.environments.iter().map(|e| e.soak))
            .max()
            .unwrap_or_default();
        let too_short = read
            .reach
            .is_some_and(|oldest| now.duration_since(oldest) < longest_soak);
        if too_short && !deepened {
            repo.deepen().await?;
            deepened = true;
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
            let ours = |i: usize| {
                commits[i]
                    .record
                    .as_ref()
                    .filter(|r| r.promotion == p.name && r.environment == env.name)
            };
            let mut moved: HashMap<usize, (Option<&str>, Option<&str>)> = HashMap::new();
            for pair in values.windows(2) {
                moved.insert(pair[1].0, (pair[0].1.as_deref(), pair[1].1.as_deref()));
            }
            let events: Vec<Event<'_>> = (0..commits.len())
                .rev()
                .filter(|i| moved.contains_key(i) || ours(*i).is_some())
                .map(|i| Event {
                    time: commits[i].info.time,
                    author: &commits[i].info.author,
                    record: ours(i),
                    moved: moved.get(&i).copied(),
                })
                .collect();
            let policy = p.tag_policy(env);
            let hold = holds::hold_after(&events, &policy);
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
                    hold,
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

/// The tags of `image` whose facts some environment's gates need: for `newestBuild` every
/// tag the filters keep; for `minAge`, `platforms` and `pinDigest` the candidates from the
/// best down to the current one (at most [`MAX_INSPECTED`]).
fn tags_needing_facts(
    rules: &Rules,
    image: &Repository,
    tags: &[Tag],
    environments: &HashMap<EnvKey, EnvState>,
) -> BTreeSet<Tag> {
    let mut wanted = BTreeSet::new();
    for p in rules.promotions.iter().filter(|p| p.image == *image) {
        for env in &p.environments {
            let newest_build = matches!(env.policy, Policy::NewestBuild(_));
            if !(newest_build || env.pin_digest || p.gates(env).need_facts()) {
                continue;
            }
            let policy = p.tag_policy(env);
            let Ok(selection) = policy.select(tags, &|_| None) else {
                continue;
            };
            if newest_build {
                wanted.extend(
                    selection
                        .rejected
                        .iter()
                        .filter(|(_, r)| *r == crate::policy::Rejection::NoCreationTime)
                        .map(|(t, _)| t.clone()),
                );
                continue;
            }
            let current = environments
                .get(&EnvKey::of(p, env))
                .and_then(|s| s.current.as_ref().ok().cloned().flatten());
            for c in selection.candidates.iter().take(MAX_INSPECTED) {
                wanted.insert(c.tag.clone());
                if current.as_deref() == Some(c.tag.as_str()) {
                    break;
                }
            }
        }
    }
    wanted
}
