//! What the decisions read from the GitOps repository, in one value: the target files at the
//! tip, and for every target its value now and the history of its value and of our records
//! for it, read back as far as the caller says it needs ([`Repo::snapshot`] deepens a
//! shallow mirror until then). A fresh cache reads what a warm one does.
//!
//! Records are matched to a target by what they changed (`Tagpromoter-Target`), and, for
//! commits written before that trailer, by the names a record bore on a commit that moved
//! this target: renaming a promotion or an environment changes nothing history means.
//!
//! It reads; it does not decide what a history means (holds, soak): that is the engine's.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use gix::ObjectId;
use jiff::Timestamp;

use super::error::{GitError, GitErrorKind};
use super::history::{Commit, History, MAX_COMMITS};
use super::message::Record;
use super::repo::Repo;
use super::store::{Batch, Store};
use crate::manifest;

/// A target whose history is wanted.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetQuery {
    /// The file, relative to the repository root.
    pub file: PathBuf,
    /// Where in the file.
    pub target: manifest::Target,
    /// What `Tagpromoter-Target` names it.
    pub id: String,
    /// The promotion and environment it belongs to now (records written before the Target
    /// trailer name only these).
    pub names: (String, String),
    /// The other places the same environment writes its tag (`targets: [ … ]`): read at the
    /// tip, they must hold what this one holds.
    pub others: Vec<(PathBuf, manifest::Target)>,
    /// The repository and branch the environment lives on: records written for another
    /// (merged, cherry-picked or copied here) are not its.
    pub identity: crate::rules::Identity,
    /// Whether another environment of the rules writes the same target in another
    /// repository or branch: then a record without identity (written before it existed)
    /// could be that environment's, and is taken for a person's change.
    pub shared: bool,
}

/// `value`, when every other target of the query holds the same tag and digest; else why
/// not (written together, they must not be overwritten apart).
fn agree(
    files: &HashMap<PathBuf, Result<String, GitError>>,
    q: &TargetQuery,
    value: Value,
) -> Result<Value, GitError> {
    for (file, target) in &q.others {
        let step = format!("reading {}", file.display());
        let text = match files.get(file) {
            Some(Ok(text)) => text,
            Some(Err(e)) => return Err(e.clone()),
            None => return Err(GitError::new(GitErrorKind::Local, &step, "not read")),
        };
        let other = manifest::read(text, target)
            .map_err(|e| GitError::new(GitErrorKind::Target, &step, e.to_string()))?;
        // One may pin the digest and another not; where both pin one, it is one digest.
        let digests_differ = matches!((&value.digest, &other.digest), (Some(a), Some(b)) if a != b);
        if other.tag != value.tag || digests_differ {
            let show = |t: &Option<String>, d: &Option<String>| {
                let mut s = t.clone().unwrap_or_else(|| "nothing".into());
                if digests_differ && let Some(d) = d {
                    s.push_str(&format!("@{d}"));
                }
                s
            };
            return Err(GitError::new(
                GitErrorKind::Target,
                &step,
                format!(
                    "{} holds {}, {} holds {}: the targets of one environment are written together and must agree; set them to one tag{}",
                    q.file.display(),
                    show(&value.tag, &value.digest),
                    file.display(),
                    show(&other.tag, &other.digest),
                    if digests_differ { " and digest" } else { "" }
                ),
            ));
        }
    }
    Ok(value)
}

/// What a target held after a commit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Value {
    /// The tag's raw text (`None`: the file or key is absent, or names no tag).
    pub tag: Option<String>,
    /// The digest pinned beside it, if any.
    pub digest: Option<String>,
    /// Whether the target could be read (a file that is not valid YAML, or where the
    /// value is not a scalar, says nothing about what ran).
    pub readable: bool,
}

/// One commit of a target's history.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// The commit.
    #[serde(with = "super::kept::object_id")]
    pub id: ObjectId,
    /// When it landed on the branch: its own time on the first-parent line, the merge's for
    /// a commit that arrived through a merge.
    pub time: Timestamp,
    /// Its author.
    pub author: String,
    /// Its subject line.
    pub subject: String,
    /// Our record for this target, if it carries one.
    pub record: Option<Record>,
    /// What the target held after it, when it changed the value (or, for the oldest commit
    /// read, what it held then).
    pub value: Option<Value>,
}

/// One target's history.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TargetHistory {
    /// Its value at the tip, or why it cannot be read.
    pub current: Result<Value, GitError>,
    /// Commits that changed its value or carry our record for it, oldest first. The first
    /// is always the oldest commit read, with the value it held then.
    pub entries: Vec<Entry>,
    /// Whether the first entry is where the repository's history begins (its value a
    /// change, not just what the target held when reading stopped).
    pub from_start: bool,
}

/// The repository as the decisions need it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// The branch's tip.
    #[serde(with = "super::kept::object_id")]
    pub tip: ObjectId,
    /// Each queried file's text at the tip, or why it cannot be a target.
    pub files: HashMap<PathBuf, Result<String, GitError>>,
    /// Each query's history, in the order of the queries.
    pub targets: Vec<TargetHistory>,
    /// When reading stopped before the first commit: the oldest commit time it reached.
    pub reach: Option<Timestamp>,
    /// How many first-parent commits were read.
    pub walked: usize,
}

impl Repo {
    /// Fetch the branch and read `queries` at its tip and back in history; while
    /// `enough(&snapshot)` says the history read is too short and the mirror is shallow,
    /// fetch more (doubling what was read, so that fetches stay few and each within git's
    /// timeout) and read again. The snapshot returned is always the last one `enough` saw,
    /// so the caller may keep what it worked out there.
    pub async fn snapshot(
        &self,
        queries: Arc<Vec<TargetQuery>>,
        mut enough: impl FnMut(&Snapshot) -> bool,
    ) -> Result<Arc<Snapshot>, GitError> {
        let tip = self.fetch().await?;
        // What was read last for the same queries: by this process (a worker's last pass),
        // else by the last one to read this branch (kept on disk: the last `once`, a worker
        // before its restart).
        let kept = self.kept_path();
        // Formatted from every query: worked out only when the disk is asked.
        let key = std::sync::OnceLock::new();
        let key = || key.get_or_init(|| super::kept::key(&queries)).clone();
        let base = match self.last_snapshot() {
            Some((asked, read)) if *asked == *queries => Some(read),
            _ => super::kept::load(&kept, &key()).await.map(Arc::new),
        };
        if let Some(base) = base {
            // The branch did not move: what was read is what a read would find.
            if base.tip == tip && enough(&base) {
                self.remember_snapshot(queries, Arc::clone(&base));
                return Ok(base);
            }
            // It moved on by a few plain commits: read those only, on top.
            if base.tip != tip {
                let (store, q) = (self.store().clone(), Arc::clone(&queries));
                // Grown in place when no one else holds it (one read from disk).
                let base = Arc::unwrap_or_clone(base);
                let grown =
                    tokio::task::spawn_blocking(move || super::grow::grow(&store, base, tip, &q))
                        .await
                        .map_err(|e| {
                            GitError::new(GitErrorKind::Local, "reading history", e.to_string())
                        })??;
                if let Some(grown) = grown
                    && enough(&grown)
                {
                    let grown = Arc::new(grown);
                    super::kept::store(&kept, &key(), Arc::clone(&grown)).await;
                    self.remember_snapshot(queries, Arc::clone(&grown));
                    return Ok(grown);
                }
            }
        }
        let read = self.read_snapshot(tip, &queries, enough).await?;
        super::kept::store(&kept, &key(), Arc::clone(&read)).await;
        self.remember_snapshot(queries, Arc::clone(&read));
        Ok(read)
    }

    /// [`Repo::snapshot`]'s read of the history at `tip`.
    async fn read_snapshot(
        &self,
        tip: ObjectId,
        queries: &Arc<Vec<TargetQuery>>,
        mut enough: impl FnMut(&Snapshot) -> bool,
    ) -> Result<Arc<Snapshot>, GitError> {
        // Read what the mirror has, a little at first: a mirror deepened once for an old
        // hold need not be walked whole on every pass after.
        let mut limit = FIRST_WALK;
        let mut walked = 0;
        loop {
            let store = self.store().clone();
            let q = Arc::clone(queries);
            let read = tokio::task::spawn_blocking(move || read(&store, tip, &q, limit))
                .await
                .map_err(|e| {
                    GitError::new(GitErrorKind::Local, "reading history", e.to_string())
                })??;
            if enough(&read) {
                return Ok(Arc::new(read));
            }
            if read.walked >= limit && limit < MAX_COMMITS {
                limit = limit.saturating_mul(2);
                continue;
            }
            // Past the cap on commits a walk reads, or a mirror that a fetch did not deepen
            // (`walked` is what the walk reached before the last fetch): nothing more.
            if read.walked >= MAX_COMMITS {
                return Ok(Arc::new(read));
            }
            let grew = read.walked > walked;
            walked = read.walked;
            if grew && self.is_shallow() {
                let by = u32::try_from(read.walked).unwrap_or(u32::MAX).max(1);
                self.deepen(by).await?;
                continue;
            }
            return Ok(Arc::new(read));
        }
    }
}

/// How many commits a snapshot reads first (doubled while the decisions need more).
const FIRST_WALK: usize = 1_000;

/// The most commits of a merged side branch read for records (a long-lived branch merged
/// back counts its newest commits only).
const MAX_SIDE: usize = 1_000;

/// Whether record `r` is `q`'s environment's by whose it is: written for `q`'s repository
/// and branch, or, written before records said (no identity), where no other environment
/// writes `q`'s target. A record merged, cherry-picked or copied from elsewhere is not.
pub(crate) fn whose(r: &Record, q: &TargetQuery) -> bool {
    match &r.identity {
        Some(id) => *id == q.identity,
        None => !q.shared,
    }
}

/// Read every query (on a blocking thread).
pub(super) fn read(
    store: &Store,
    tip: ObjectId,
    queries: &[TargetQuery],
    limit: usize,
) -> Result<Snapshot, GitError> {
    let history = History::walk_at_most(store, tip, limit)?;
    let commits = history.commits();
    let reach = history
        .truncated
        .then(|| commits.last().map(|c| c.info.time))
        .flatten();
    let paths = paths(queries);
    let changes = history.file_changes(store, &paths)?;
    let batch = store.batch();
    let side = side_records(&batch, &history, store)?;
    let mut files = HashMap::new();
    for path in &paths {
        files.insert(path.clone(), text_at(&batch, tip, path));
    }
    let mut blobs: HashMap<ObjectId, Option<String>> = HashMap::new();
    let mut targets = Vec::with_capacity(queries.len());
    for q in queries {
        let current = current(&files, q);
        // The target's value at each commit that changed its file, oldest first.
        let mut values: Vec<(usize, Value)> = Vec::new();
        for change in changes.get(&q.file).into_iter().flatten() {
            let value = value_in(&batch, &mut blobs, change.blob, &q.target);
            if values.last().is_none_or(|(_, v)| *v != value) {
                values.push((change.commit, value));
            }
        }
        // Names of records written before the Target trailer, learnt from those that moved
        // this target to the tag they name.
        let mut names: BTreeSet<(&str, &str)> =
            BTreeSet::from([(q.names.0.as_str(), q.names.1.as_str())]);
        for (i, value) in values.iter().skip(1) {
            if let Some(r) = &commits[*i].record
                && r.target.is_none()
                && r.to.is_some()
                && value.tag.as_deref() == r.to.as_ref().map(|t| t.as_str())
            {
                names.insert((r.promotion.as_str(), r.environment.as_str()));
            }
        }
        let ours = |r: &Record| {
            let target = match &r.target {
                Some(t) => *t == q.id,
                None => names.contains(&(r.promotion.as_str(), r.environment.as_str())),
            };
            target && whose(r, q)
        };
        let mut value_at: HashMap<usize, Value> = values.into_iter().collect();
        let mut entries = Vec::new();
        for i in (0..commits.len()).rev() {
            let c = &commits[i];
            // Records that arrived through this commit's merge, at its time.
            for (merged, record) in side.get(&i).into_iter().flatten().rev() {
                if ours(record) {
                    entries.push(Entry {
                        id: *merged,
                        time: c.info.time,
                        author: c.info.author.clone(),
                        subject: record.subject(),
                        record: Some(record.clone()),
                        value: None,
                    });
                }
            }
            let record = c.record.as_ref().filter(|r| ours(r));
            let value = value_at.remove(&i);
            if record.is_some() || value.is_some() {
                entries.push(Entry::of(c, record.cloned(), value));
            }
        }
        targets.push(TargetHistory {
            current,
            entries,
            from_start: !history.truncated,
        });
    }
    Ok(Snapshot {
        tip,
        files,
        targets,
        reach,
        walked: commits.len(),
    })
}

/// Every file the queries read, each once.
pub(super) fn paths(queries: &[TargetQuery]) -> Vec<PathBuf> {
    queries
        .iter()
        .flat_map(|q| std::iter::once(&q.file).chain(q.others.iter().map(|(f, _)| f)))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The query's value in `files` (the tip's), or why it cannot be read.
pub(super) fn current(
    files: &HashMap<PathBuf, Result<String, GitError>>,
    q: &TargetQuery,
) -> Result<Value, GitError> {
    let step = || format!("reading {}", q.file.display());
    let value = match files.get(&q.file) {
        Some(Ok(text)) => manifest::read(text, &q.target)
            .map(|c| Value {
                tag: c.tag,
                digest: c.digest,
                readable: true,
            })
            .map_err(|e| GitError::new(GitErrorKind::Target, &step(), e.to_string())),
        Some(Err(e)) => Err(e.clone()),
        None => Err(GitError::new(GitErrorKind::Local, &step(), "not read")),
    };
    value.and_then(|value| agree(files, q, value))
}

/// What `target` holds in the file `blob` (`None`: the file is absent); each blob's text is
/// read once into `texts`.
pub(super) fn value_in(
    batch: &Batch,
    texts: &mut HashMap<ObjectId, Option<String>>,
    blob: Option<ObjectId>,
    target: &manifest::Target,
) -> Value {
    let absent = Value {
        tag: None,
        digest: None,
        readable: true,
    };
    let Some(blob) = blob else {
        return absent;
    };
    let text = texts.entry(blob).or_insert_with(|| {
        batch
            .blob(blob)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
    });
    match text.as_deref().map(|t| manifest::read(t, target)) {
        Some(Ok(c)) => Value {
            tag: c.tag,
            digest: c.digest,
            readable: true,
        },
        // The key is not there (yet): no target, as for a missing file.
        Some(Err(manifest::EditError::NotFound { .. })) => absent,
        _ => Value {
            readable: false,
            ..absent
        },
    }
}

impl Entry {
    /// The entry for a first-parent commit.
    pub(super) fn of(c: &Commit, record: Option<Record>, value: Option<Value>) -> Self {
        Self {
            id: c.id,
            time: c.info.time,
            author: c.info.author.clone(),
            subject: c
                .info
                .message
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
            record,
            value,
        }
    }
}

/// For each merge commit on the first-parent line (by index), the records of the commits it
/// brought in (newest first): a release or a bump made on a branch and merged counts from
/// when it landed.
fn side_records(
    batch: &Batch,
    history: &History,
    store: &Store,
) -> Result<HashMap<usize, Vec<(ObjectId, Record)>>, GitError> {
    let commits = history.commits();
    let line: HashSet<ObjectId> = commits.iter().map(|c| c.id).collect();
    let boundary: HashSet<ObjectId> = store.shallow_boundary().into_iter().collect();
    let mut out: HashMap<usize, Vec<(ObjectId, Record)>> = HashMap::new();
    let mut seen = HashSet::new();
    for (i, c) in commits.iter().enumerate() {
        for &parent in c.info.parents.iter().skip(1) {
            let mut next = Some(parent);
            let mut read = 0;
            while let Some(id) = next {
                if line.contains(&id) || read == MAX_SIDE || !batch.has(id) || !seen.insert(id) {
                    break;
                }
                read += 1;
                let info = batch.info(id)?;
                if let Some(record) = Record::parse(&info.message) {
                    out.entry(i).or_default().push((id, record));
                }
                next = if boundary.contains(&id) {
                    None
                } else {
                    info.parents.first().copied()
                };
            }
        }
    }
    Ok(out)
}

/// The text of `file` at `tip`, or why it cannot be a target.
pub(super) fn text_at(
    batch: &Batch,
    tip: ObjectId,
    file: &std::path::Path,
) -> Result<String, GitError> {
    let step = format!("reading {}", file.display());
    match batch.read(tip, file)? {
        None => Err(GitError::new(
            GitErrorKind::Target,
            &step,
            "the file does not exist on the branch",
        )),
        Some(f) => String::from_utf8(f.content)
            .map_err(|_| GitError::new(GitErrorKind::Target, &step, "is not UTF-8 text")),
    }
}
