//! History for the gates, read once per pass: the branch's first-parent commits, and for
//! every target file the commits that changed it. Trees are compared by id before anything
//! is read (a subtree that did not change is never decoded twice), and a file's content is
//! read once per distinct blob. Commits made by people count as much as ours; our trailers
//! say which commits are ours.
//!
//! It reads objects only; turning a file's text into a tag is the caller's business.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use gix::ObjectId;

use super::error::GitError;
use super::message::Record;
use super::store::{CommitInfo, Store};

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
    /// Walk first parents from `tip`.
    pub fn walk(store: &Store, tip: ObjectId) -> Result<Self, GitError> {
        let mut commits = Vec::new();
        let mut next = Some(tip);
        let boundary = store.shallow_boundary();
        let mut truncated = false;
        while let Some(id) = next {
            if commits.len() >= MAX_COMMITS {
                truncated = true;
                break;
            }
            let info = store.info(id)?;
            next = info.parents.first().copied().filter(|p| store.has(*p));
            if boundary.contains(&id) || (next.is_none() && !info.parents.is_empty()) {
                truncated = true;
            }
            let record = Record::parse(&info.message);
            commits.push(Commit { id, info, record });
        }
        Ok(Self { commits, truncated })
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
        let mut lookup = Lookup {
            store,
            memo: HashMap::new(),
        };
        let mut out: HashMap<PathBuf, Vec<FileChange>> =
            files.iter().map(|f| (f.clone(), Vec::new())).collect();
        let mut last_root = None;
        for (index, commit) in self.commits.iter().enumerate().rev() {
            let root = store.tree_of(commit.id)?;
            if last_root == Some(root) {
                continue;
            }
            last_root = Some(root);
            for file in files {
                let blob = lookup.blob_at(root, file)?;
                let changes = out.entry(file.clone()).or_default();
                if changes.last().is_none_or(|c| c.blob != blob) {
                    changes.push(FileChange {
                        commit: index,
                        blob,
                    });
                }
            }
        }
        Ok(out)
    }
}

/// Path lookups in trees, remembered by (tree id, path below it): consecutive commits share
/// nearly every subtree, so each distinct subtree is decoded once per walk.
struct Lookup<'s> {
    store: &'s Store,
    memo: HashMap<(ObjectId, String), Option<ObjectId>>,
}

impl Lookup<'_> {
    fn blob_at(&mut self, tree: ObjectId, path: &Path) -> Result<Option<ObjectId>, GitError> {
        let parts: Vec<String> = path
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        self.find(tree, &parts)
    }

    fn find(&mut self, tree: ObjectId, parts: &[String]) -> Result<Option<ObjectId>, GitError> {
        let Some((first, rest)) = parts.split_first() else {
            return Ok(None);
        };
        let key = (tree, parts.join("/"));
        if let Some(found) = self.memo.get(&key) {
            return Ok(*found);
        }
        let entry = self
            .store
            .tree_entries(tree)?
            .into_iter()
            .find(|(name, _, _)| name == first);
        let found = match entry {
            None => None,
            Some((_, is_tree, id)) => match (is_tree, rest.is_empty()) {
                (false, true) => Some(id),
                (true, false) => self.find(id, rest)?,
                _ => None,
            },
        };
        self.memo.insert(key, found);
        Ok(found)
    }
}
