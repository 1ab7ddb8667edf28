//! Bumps made into commits: each edit is compare-and-swap on the file as the chain has it
//! so far, and a bump lands in one commit, all of its edits or none.

use std::path::{Path, PathBuf};

use gix::ObjectId;
use gix::objs::tree::EntryKind;
use jiff::Timestamp;

use super::Repo;
use super::landing::Outcome;
use crate::gitops::error::{GitError, GitErrorKind};
use crate::gitops::message::Record;
use crate::gitops::store::{Author, Store};
use crate::manifest;

/// A file change a bump makes: compare-and-swap on the target's tag.
#[derive(Debug, Clone)]
pub struct FileEdit {
    /// The file, relative to the repository root.
    pub file: PathBuf,
    /// Where in the file.
    pub target: manifest::Target,
    /// The tag the file held when the bump was decided (`None`: none). When the file holds
    /// something else by the time the commit is made, a person got there first: the bump
    /// is dropped, never written over them.
    pub expected: Option<String>,
    /// What to write.
    pub wanted: manifest::Wanted,
}

/// One bump: the audit record (commit message) and the file changes (an environment with
/// several targets has several; a hold's release changes no file and is an empty commit).
/// They land in one commit, all of them or none.
#[derive(Debug, Clone)]
pub struct Bump {
    /// The audit record.
    pub record: Record,
    /// The changes.
    pub edits: Vec<FileEdit>,
}

/// A chain of commits on a base, one per bump that changed something.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    /// The commit the chain starts from.
    pub base: Option<ObjectId>,
    /// (bump index, commit), oldest first.
    pub commits: Vec<(usize, ObjectId)>,
    /// The bumps that made no commit, with why.
    pub skipped: Vec<(usize, Outcome)>,
}

impl Chain {
    /// The newest commit after the first `n` commits (the base for 0).
    pub(super) fn head_at(&self, n: usize) -> Option<ObjectId> {
        match n {
            0 => self.base,
            n => self.commits.get(n - 1).map(|(_, id)| *id),
        }
    }
}

impl Repo {
    /// Commit every bump on `base`, one commit each, chained, at `time` (the pass's now).
    /// Runs on a blocking thread.
    pub async fn commit(
        &self,
        base: ObjectId,
        bumps: &[Bump],
        time: Timestamp,
    ) -> Result<Chain, GitError> {
        let store = self.store.clone();
        let author = self.config.author.clone();
        let bumps = bumps.to_vec();
        tokio::task::spawn_blocking(move || build_chain(&store, &author, base, &bumps, time))
            .await
            .map_err(|e| GitError::new(GitErrorKind::Local, "writing commits", e.to_string()))?
    }

    /// Whether `id` is exactly the commit tagpromoter makes for `bump` on its parent at its
    /// time: the same tree, message, author and committer. A commit that only looks like
    /// ours (our trailers over another change) is not.
    pub async fn made_for(&self, id: ObjectId, bump: &Bump) -> Result<bool, GitError> {
        let store = self.store.clone();
        let author = self.config.author.clone();
        let bump = bump.clone();
        tokio::task::spawn_blocking(move || {
            let info = store.info(id)?;
            let [parent] = info.parents[..] else {
                return Ok(false);
            };
            let chain = build_chain(&store, &author, parent, &[bump], info.time)?;
            Ok(chain.commits.first().map(|(_, made)| *made) == Some(id))
        })
        .await
        .map_err(|e| GitError::new(GitErrorKind::Local, "reading a commit", e.to_string()))?
    }
}

/// Make the commits of `bumps` on `base`: each edit is compare-and-swap on the file as the
/// chain has it so far (several bumps may edit one file).
fn build_chain(
    store: &Store,
    author: &Author,
    base: ObjectId,
    bumps: &[Bump],
    time: Timestamp,
) -> Result<Chain, GitError> {
    let mut chain = Chain {
        base: Some(base),
        ..Chain::default()
    };
    let mut head = base;
    for (i, bump) in bumps.iter().enumerate() {
        match edit_files(store, head, &bump.edits)? {
            Err(outcome) => chain.skipped.push((i, outcome)),
            Ok(changes) if changes.is_empty() && !bump.edits.is_empty() => {
                chain.skipped.push((i, Outcome::AlreadyInPlace));
            }
            Ok(changes) => {
                let changes: Vec<(&Path, &[u8], EntryKind)> = changes
                    .iter()
                    .map(|(path, text, kind)| (path.as_path(), text.as_bytes(), *kind))
                    .collect();
                head = store.commit(head, &changes, &bump.record.message(), author, time)?;
                chain.commits.push((i, head));
            }
        }
    }
    Ok(chain)
}

/// A file as a bump leaves it: path, text, mode.
type Changed = (PathBuf, String, EntryKind);

/// The files `edits` change on `head`, each as it will be (several edits of one file apply
/// in turn); `Err` with why the bump makes no commit: one edit failed or found a person's
/// value (then none is made: a bump lands whole or not at all).
fn edit_files(
    store: &Store,
    head: ObjectId,
    edits: &[FileEdit],
) -> Result<Result<Vec<Changed>, Outcome>, GitError> {
    let mut files: Vec<(PathBuf, String, EntryKind, bool)> = Vec::new();
    for edit in edits {
        let step = format!("editing {}", edit.file.display());
        let failed =
            |detail: String| Outcome::Failed(GitError::new(GitErrorKind::Target, &step, detail));
        let at = match files.iter().position(|(p, ..)| *p == edit.file) {
            Some(at) => at,
            None => {
                let file = match store.read(head, &edit.file) {
                    Ok(Some(f)) => f,
                    Ok(None) => {
                        return Ok(Err(failed("the file does not exist on the branch".into())));
                    }
                    Err(e) if e.kind == GitErrorKind::Target => return Ok(Err(Outcome::Failed(e))),
                    Err(e) => return Err(e),
                };
                let Ok(text) = String::from_utf8(file.content) else {
                    return Ok(Err(failed("is not UTF-8 text".into())));
                };
                files.push((edit.file.clone(), text, file.kind, false));
                files.len() - 1
            }
        };
        let text = &files[at].1;
        let found = match manifest::read(text, &edit.target) {
            Ok(current) => current.tag,
            Err(e) => return Ok(Err(failed(e.to_string()))),
        };
        if found.as_deref() == Some(edit.wanted.tag.as_str()) && edit.wanted.digest.is_none() {
            continue;
        }
        if found != edit.expected {
            return Ok(Err(Outcome::Superseded { found }));
        }
        match manifest::apply(text, &edit.target, &edit.wanted) {
            Ok(manifest::Outcome::Unchanged) => {}
            Ok(manifest::Outcome::Changed(new)) => {
                files[at].1 = new;
                files[at].3 = true;
            }
            Err(e) => return Ok(Err(failed(e.to_string()))),
        }
    }
    Ok(Ok(files
        .into_iter()
        .filter(|(.., changed)| *changed)
        .map(|(path, text, kind, _)| (path, text, kind))
        .collect()))
}
