//! History for the gates, read once per pass: the branch's first-parent commits, and for
//! every target file the commits that changed it. From one commit to the next, only the
//! subtrees whose ids changed on the way to a target are decoded, so a commit costs the
//! directories it touched, not the number of targets. Commits made by people count as much
//! as ours; our trailers say which commits are ours.
//!
//! It reads objects only; turning a file's text into a tag is the caller's business.

use std::collections::HashMap;
use std::path::PathBuf;

use gix::ObjectId;

use super::error::GitError;
use super::message::Record;
use super::store::{Batch, CommitInfo, Store};

/// The most commits a history query walks.
pub const MAX_COMMITS: usize = 20_000;

/// The first-parent history of a branch, newest first.
#[derive(Debug, Clone, Default)]
pub struct History {
    commits: Vec<Commit>,
    /// Whether the walk stopped before the first commit (a shallow boundary, or the cap).
    pub truncated: bool,
}

/// One commit of the history.
#[derive(Debug, Clone)]
pub struct Commit {
    /// Its id.
    pub id: ObjectId,
    /// Time, author, message, parents.
    pub info: CommitInfo,
    /// Our record, when the message carries our trailers.
    pub record: Option<Record>,
}

/// A commit that changed a file: its index in [`History::commits`] and the file's blob
/// after it (`None`: the file is absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileChange {
    /// Index into the history, newest first.
    pub commit: usize,
    /// The blob, if the file exists.
    pub blob: Option<ObjectId>,
}

impl History {
    /// Walk first parents from `tip` (at most [`MAX_COMMITS`]).
    pub fn walk(store: &Store, tip: ObjectId) -> Result<Self, GitError> {
        Self::walk_at_most(store, tip, MAX_COMMITS)
    }

    /// Walk first parents from `tip`, reading at most `limit` commits (and never more
    /// than [`MAX_COMMITS`]).
    pub fn walk_at_most(store: &Store, tip: ObjectId, limit: usize) -> Result<Self, GitError> {
        let limit = limit.min(MAX_COMMITS);
        let batch = store.batch();
        let mut commits = Vec::new();
        let mut next = Some(tip);
        let boundary = store.shallow_boundary();
        let mut truncated = false;
        while let Some(id) = next {
            if commits.len() >= limit {
                truncated = true;
                break;
            }
            let info = batch.info(id)?;
            next = info.parents.first().copied().filter(|p| batch.has(*p));
            if boundary.contains(&id) || (next.is_none() && !info.parents.is_empty()) {
                truncated = true;
            }
            let record = Record::parse(&info.message);
            commits.push(Commit { id, info, record });
        }
        Ok(Self { commits, truncated })
    }

    /// The first-parent commits from `tip` back to `base` (not included), or `None` when
    /// `base` is not among the first `limit`.
    pub fn since(
        store: &Store,
        tip: ObjectId,
        base: ObjectId,
        limit: usize,
    ) -> Result<Option<Self>, GitError> {
        let mut line = Self::walk_at_most(store, tip, limit.saturating_add(1))?;
        let Some(gained) = line.commits.iter().position(|c| c.id == base) else {
            return Ok(None);
        };
        line.commits.truncate(gained);
        line.truncated = true;
        Ok(Some(line))
    }

    /// The commits, newest first.
    pub fn commits(&self) -> &[Commit] {
        &self.commits
    }

    /// For each of `files`, the commits that changed it, oldest first (the oldest commit of
    /// the walk always counts as a change: it is where the known history starts).
    pub fn file_changes(
        &self,
        store: &Store,
        files: &[PathBuf],
    ) -> Result<HashMap<PathBuf, Vec<FileChange>>, GitError> {
        self.changes(store, files, None)
    }

    /// For each of `files`, the commits of this history that changed it from what it was
    /// at `base` (the parent of the oldest), oldest first: a file no commit touched has
    /// none, and its blob is never read.
    pub fn file_changes_since(
        &self,
        store: &Store,
        files: &[PathBuf],
        base: ObjectId,
    ) -> Result<HashMap<PathBuf, Vec<FileChange>>, GitError> {
        self.changes(store, files, Some(base))
    }

    fn changes(
        &self,
        store: &Store,
        files: &[PathBuf],
        base: Option<ObjectId>,
    ) -> Result<HashMap<PathBuf, Vec<FileChange>>, GitError> {
        let batch = store.batch();
        let mut root = Dir::default();
        for (i, file) in files.iter().enumerate() {
            let mut node = &mut root;
            let parts: Vec<String> = file
                .components()
                .filter_map(|c| match c {
                    std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                    _ => None,
                })
                .collect();
            for part in parts {
                let path = match node.path.as_str() {
                    "" => part.clone(),
                    parent => format!("{parent}/{part}"),
                };
                node = node.children.entry(part).or_insert_with(|| Dir {
                    path,
                    ..Dir::default()
                });
            }
            node.files.push(i);
        }
        let mut blobs: Vec<Option<ObjectId>> = vec![None; files.len()];
        let mut changes: Vec<Vec<FileChange>> = vec![Vec::new(); files.len()];
        // After `base`, each commit is compared with its parent, descending only where
        // they differ: a commit that touched no target's directory costs two tree reads.
        let mut parent = base.map(|b| batch.tree_of(b)).transpose()?;
        for (index, commit) in self.commits.iter().enumerate().rev() {
            let tree = batch.tree_of(commit.id)?;
            let mut changed = Vec::new();
            match parent {
                Some(before) => {
                    root.diff(&batch, Some(before), Some(tree), &mut blobs, &mut changed)?
                }
                // Without a base, the first visit reaches every file, so each starts with
                // the oldest commit.
                None => root.visit(&batch, Some(tree), &mut blobs, &mut changed)?,
            }
            if base.is_some() {
                parent = Some(tree);
            }
            for i in changed {
                if changes[i].last().is_none_or(|c| c.blob != blobs[i]) {
                    changes[i].push(FileChange {
                        commit: index,
                        blob: blobs[i],
                    });
                }
            }
        }
        Ok(files.iter().cloned().zip(changes).collect())
    }
}

/// `from` and its ancestors (every parent, not only the first) in the mirror, at most
/// `limit` of them, nearest first.
pub fn ancestry(
    store: &Store,
    from: ObjectId,
    limit: usize,
) -> std::collections::HashSet<ObjectId> {
    let batch = store.batch();
    let mut seen = std::collections::HashSet::new();
    let mut queue = std::collections::VecDeque::from([from]);
    while let Some(id) = queue.pop_front() {
        if seen.len() >= limit || !batch.has(id) || !seen.insert(id) {
            continue;
        }
        if let Ok(info) = batch.info(id) {
            queue.extend(info.parents);
        }
    }
    seen
}

/// The directories on the way to the target files, with the tree id each had at the
/// commit visited last.
#[derive(Default)]
struct Dir {
    /// Its path from the repository's root (`""` for the root).
    path: String,
    children: std::collections::BTreeMap<String, Dir>,
    /// Indexes of the files that end here (a name may be wanted by several targets).
    files: Vec<usize>,
    /// The id seen last (`Some(None)`: absent); `None` before the first visit.
    seen: Option<Option<ObjectId>>,
}

impl Dir {
    /// Visit this directory as `id` (a tree, or for a file node its blob); record the files
    /// whose blob changed.
    fn visit(
        &mut self,
        batch: &Batch,
        id: Option<ObjectId>,
        blobs: &mut [Option<ObjectId>],
        changed: &mut Vec<usize>,
    ) -> Result<(), GitError> {
        if self.seen == Some(id) {
            return Ok(());
        }
        self.seen = Some(id);
        for &i in &self.files {
            blobs[i] = id;
            changed.push(i);
        }
        if self.children.is_empty() {
            return Ok(());
        }
        let entries = self.entries(batch, id)?;
        for (name, child) in &mut self.children {
            let child_id = child.id_in(&entries, name);
            child.visit(batch, child_id, blobs, changed)?;
        }
        Ok(())
    }

    /// Record the files under this directory whose blob differs between `old` and `new`
    /// (trees, or for a file node its blobs), reading only the trees that differ.
    fn diff(
        &self,
        batch: &Batch,
        old: Option<ObjectId>,
        new: Option<ObjectId>,
        blobs: &mut [Option<ObjectId>],
        changed: &mut Vec<usize>,
    ) -> Result<(), GitError> {
        if old == new {
            return Ok(());
        }
        for &i in &self.files {
            blobs[i] = new;
            changed.push(i);
        }
        if self.children.is_empty() {
            return Ok(());
        }
        let (before, after) = (self.entries(batch, old)?, self.entries(batch, new)?);
        for (name, child) in &self.children {
            let (old, new) = (child.id_in(&before, name), child.id_in(&after, name));
            child.diff(batch, old, new, blobs, changed)?;
        }
        Ok(())
    }

    /// The entries of this directory's tree `id` (none for a file node, or an absent one).
    fn entries(
        &self,
        batch: &Batch,
        id: Option<ObjectId>,
    ) -> Result<HashMap<String, (bool, ObjectId)>, GitError> {
        Ok(match id {
            Some(tree) if self.files.is_empty() => batch
                .tree_entries(tree, &self.path)?
                .into_iter()
                .map(|(name, is_tree, id)| (name, (is_tree, id)))
                .collect(),
            _ => HashMap::new(),
        })
    }

    /// This node's id among its parent's `entries`, as `name`: a file where a file is
    /// wanted, a tree where a directory is; else absent.
    fn id_in(&self, entries: &HashMap<String, (bool, ObjectId)>, name: &str) -> Option<ObjectId> {
        let wants_tree = !self.children.is_empty();
        match entries.get(name) {
            Some((is_tree, id)) if *is_tree == wants_tree => Some(*id),
            _ => None,
        }
    }
}
