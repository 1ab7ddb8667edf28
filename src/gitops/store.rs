//! The local mirror's objects, through gix: read a file at a commit without a checkout, and
//! write blobs, trees and commits without a worktree. Paths are walked one component at a
//! time so that a symlink, a submodule or a directory where a file should be is refused,
//! never followed.

use std::path::{Component, Path};

use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::objs::tree::EntryKind;
use jiff::Timestamp;

use super::error::{GitError, GitErrorKind};

/// A file read from a commit.
#[derive(Debug, Clone)]
pub struct FileAt {
    /// Its bytes.
    pub content: Vec<u8>,
    /// Regular or executable.
    pub kind: EntryKind,
    /// Its blob id.
    pub blob: ObjectId,
}

/// What a commit says about itself.
#[derive(Debug, Clone)]
pub struct CommitInfo {
    /// Committer time.
    pub time: Timestamp,
    /// The author's name.
    pub author: String,
    /// The message.
    pub message: String,
    /// Parent ids.
    pub parents: Vec<ObjectId>,
}

/// The object store of the bare mirror. Cheap to clone (the handle is shared), so blocking
/// work can move to a blocking thread with its own copy.
#[derive(Clone)]
pub struct Store {
    repo: gix::ThreadSafeRepository,
}

fn local(step: &str, e: impl std::fmt::Display) -> GitError {
    GitError::new(GitErrorKind::Local, step, e.to_string())
}

fn target(path: &Path, why: String) -> GitError {
    GitError::new(
        GitErrorKind::Target,
        &format!("reading {}", path.display()),
        why,
    )
}

/// The most decoded objects a handle keeps, in bytes.
const OBJECT_CACHE_BYTES: usize = 2 << 20;

/// The largest file read from the repository (a target, the ledger, what a renderer is
/// given): such files are kilobytes, and a file that inflates to hundreds of MiB would cost
/// every pass that much memory. Its size is read from the object's header: a larger one is
/// refused, never inflated.
pub const MAX_FILE_BYTES: u64 = 8 << 20;

/// The largest directory (tree object) read: 16 MiB holds some 300,000 entries.
pub const MAX_TREE_BYTES: u64 = 16 << 20;

/// The size of object `id` from its header (nothing inflated), refused past `limit` with
/// what it is and where.
fn within_limit(
    repo: &gix::Repository,
    id: ObjectId,
    limit: u64,
    what: impl FnOnce() -> String,
) -> Result<(), GitError> {
    let header = repo
        .find_header(id)
        .map_err(|e| local("reading the repository", e))?;
    if header.size() > limit {
        return Err(GitError::new(
            GitErrorKind::Target,
            &format!("reading {}", what()),
            format!(
                "it is {}, over the {} a {} may be: it is not read; make it smaller",
                mib(header.size()),
                mib(limit),
                if limit == MAX_TREE_BYTES {
                    "directory"
                } else {
                    "file"
                }
            ),
        ));
    }
    Ok(())
}

/// `bytes` in MiB, for messages.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

impl Store {
    /// Open the bare repository at `dir`.
    pub fn open(dir: &Path) -> Result<Self, GitError> {
        let repo = gix::open(dir).map_err(|e| local("opening the local mirror", e))?;
        Ok(Self {
            repo: repo.into_sync(),
        })
    }

    fn repo(&self) -> gix::Repository {
        let mut repo = self.repo.to_thread_local();
        // Reads go down the same trees again and again (every target's path from the root,
        // at every commit): decoded objects are kept, within a bound per handle.
        repo.object_cache_size_if_unset(OBJECT_CACHE_BYTES);
        repo
    }

    /// The commit a ref points at, if the ref exists.
    pub fn resolve(&self, reference: &str) -> Result<Option<ObjectId>, GitError> {
        let repo = self.repo();
        let found = repo
            .try_find_reference(reference)
            .map_err(|e| local("reading refs", e))?;
        match found {
            None => Ok(None),
            Some(mut r) => {
                let id = r.peel_to_id().map_err(|e| local("reading refs", e))?;
                Ok(Some(id.detach()))
            }
        }
    }

    /// The file at `path` in `commit` (see [`Batch::read`]).
    pub fn read(&self, commit: ObjectId, path: &Path) -> Result<Option<FileAt>, GitError> {
        self.batch().read(commit, path)
    }

    /// Time, message and parents of a commit.
    pub fn info(&self, id: ObjectId) -> Result<CommitInfo, GitError> {
        self.batch().info(id)
    }

    /// Whether `id` is present (a shallow mirror lacks what is past its boundary).
    pub fn has(&self, id: ObjectId) -> bool {
        self.batch().has(id)
    }

    /// A handle for many reads in a row on this thread (one repository instance, its
    /// object caches warm).
    pub fn batch(&self) -> Batch {
        Batch { repo: self.repo() }
    }

    /// Write a commit on `parent` at `time` whose tree differs only in `changes`' files;
    /// with none, an empty commit (a record that changes no file, such as a hold's release).
    pub fn commit(
        &self,
        parent: ObjectId,
        changes: &[(&Path, &[u8], EntryKind)],
        message: &str,
        author: &Author,
        time: Timestamp,
    ) -> Result<ObjectId, GitError> {
        let repo = self.repo();
        let step = "writing a commit";
        let parent_commit = repo.find_commit(parent).map_err(|e| local(step, e))?;
        let tree = parent_commit.tree().map_err(|e| local(step, e))?;
        let tree_id = if changes.is_empty() {
            tree.id
        } else {
            let mut editor = tree.edit().map_err(|e| local(step, e))?;
            for (path, content, kind) in changes {
                let blob = repo
                    .write_blob(content)
                    .map_err(|e| local(step, e))?
                    .detach();
                let rela = path
                    .to_str()
                    .ok_or_else(|| target(path, "is not UTF-8".into()))?;
                editor
                    .upsert(rela, *kind, blob)
                    .map_err(|e| local(step, e))?;
            }
            editor.write().map_err(|e| local(step, e))?.detach()
        };
        write_commit(&repo, tree_id, [parent], message, author, time)
    }

    /// Write a commit whose tree holds one file, `name` with `content`, on `parent` (none:
    /// the first of its history), by `author` at `time` — a record kept beside the
    /// branches, such as the bot's sightings.
    pub fn commit_one_file(
        &self,
        parent: Option<ObjectId>,
        name: &str,
        content: &[u8],
        message: &str,
        author: &Author,
        time: Timestamp,
    ) -> Result<ObjectId, GitError> {
        let repo = self.repo();
        let step = "writing a commit";
        let blob = repo
            .write_blob(content)
            .map_err(|e| local(step, e))?
            .detach();
        let tree = gix::objs::Tree {
            entries: vec![gix::objs::tree::Entry {
                mode: EntryKind::Blob.into(),
                filename: name.into(),
                oid: blob,
            }],
        };
        let tree_id = repo
            .write_object(&tree)
            .map_err(|e| local(step, e))?
            .detach();
        write_commit(&repo, tree_id, parent, message, author, time)
    }

    /// Commits at the shallow boundary, if the mirror is shallow.
    pub fn shallow_boundary(&self) -> Vec<ObjectId> {
        self.repo()
            .shallow_commits()
            .ok()
            .flatten()
            .map(|c| c.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// Write a commit of `tree` on `parents` by `author` (committer too) at `time`.
fn write_commit(
    repo: &gix::Repository,
    tree: ObjectId,
    parents: impl IntoIterator<Item = ObjectId>,
    message: &str,
    author: &Author,
    time: Timestamp,
) -> Result<ObjectId, GitError> {
    let signature = gix::actor::Signature {
        name: author.name.as_str().into(),
        email: author.email.as_str().into(),
        time: gix::date::Time {
            seconds: time.as_second(),
            offset: 0,
        },
    };
    let mut buf = gix::date::parse::TimeBuf::default();
    let mut buf2 = gix::date::parse::TimeBuf::default();
    let commit = repo
        .new_commit_as(
            signature.to_ref(&mut buf),
            signature.to_ref(&mut buf2),
            message,
            tree,
            parents,
        )
        .map_err(|e| local("writing a commit", e))?;
    Ok(commit.id)
}

/// Reads on one thread through one repository instance: for the history walk, which reads
/// thousands of objects in a row.
pub struct Batch {
    repo: gix::Repository,
}

impl Batch {
    /// The file at `path` in `commit`; `Ok(None)` when there is no such path. A symlink, a
    /// submodule or a directory on the way (or at the end) is a [`GitErrorKind::Target`] error.
    pub fn read(&self, commit: ObjectId, path: &Path) -> Result<Option<FileAt>, GitError> {
        let repo = &self.repo;
        let step = "reading the repository";
        let commit = repo.find_commit(commit).map_err(|e| local(step, e))?;
        let root = commit.tree_id().map_err(|e| local(step, e))?.detach();
        within_limit(repo, root, MAX_TREE_BYTES, || {
            "the repository's root".into()
        })?;
        let mut tree = repo.find_tree(root).map_err(|e| local(step, e))?;
        let parts: Vec<&str> = path
            .components()
            .map(|c| match c {
                Component::Normal(s) => s.to_str().ok_or(()),
                _ => Err(()),
            })
            .collect::<Result<_, _>>()
            .map_err(|_| target(path, "is not a plain relative path".into()))?;
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let Some(entry) = tree.find_entry(*part) else {
                return Ok(None);
            };
            let mode = entry.mode();
            let id = entry.oid().to_owned();
            let so_far = parts[..=i].join("/");
            if mode.is_link() {
                return Err(target(
                    path,
                    format!("{so_far} is a symbolic link; refusing to follow it"),
                ));
            }
            if mode.is_commit() {
                return Err(target(path, format!("{so_far} is a submodule")));
            }
            if last {
                if mode.is_tree() {
                    return Err(target(path, "is a directory, not a file".into()));
                }
                within_limit(repo, id, MAX_FILE_BYTES, || path.display().to_string())?;
                let blob = repo.find_blob(id).map_err(|e| local(step, e))?;
                return Ok(Some(FileAt {
                    content: blob.data.clone(),
                    kind: mode.kind(),
                    blob: id,
                }));
            }
            if !mode.is_tree() {
                return Err(target(path, format!("{so_far} is a file, not a directory")));
            }
            within_limit(repo, id, MAX_TREE_BYTES, || so_far.clone())?;
            tree = repo.find_tree(id).map_err(|e| local(step, e))?;
        }
        Err(target(path, "is empty".into()))
    }

    /// Time, message and parents of a commit.
    pub fn info(&self, id: ObjectId) -> Result<CommitInfo, GitError> {
        let repo = &self.repo;
        let step = "reading history";
        let commit = repo.find_commit(id).map_err(|e| local(step, e))?;
        let time = commit.time().map_err(|e| local(step, e))?;
        let message = commit.message_raw_sloppy().to_str_lossy().into_owned();
        let author = commit
            .author()
            .map(|a| a.name.to_str_lossy().into_owned())
            .unwrap_or_default();
        Ok(CommitInfo {
            time: Timestamp::from_second(time.seconds).unwrap_or(Timestamp::UNIX_EPOCH),
            author,
            message,
            parents: commit.parent_ids().map(|p| p.detach()).collect(),
        })
    }

    /// The root tree of a commit.
    pub fn tree_of(&self, commit: ObjectId) -> Result<ObjectId, GitError> {
        let repo = &self.repo;
        let step = "reading history";
        let commit = repo.find_commit(commit).map_err(|e| local(step, e))?;
        commit
            .tree_id()
            .map(|id| id.detach())
            .map_err(|e| local(step, e))
    }

    /// The entries of a tree (the directory `path`; `""`: the root): name, blob-or-tree,
    /// id. Symlinks and submodules are left out (they are never read through).
    pub fn tree_entries(
        &self,
        tree: ObjectId,
        path: &str,
    ) -> Result<Vec<(String, bool, ObjectId)>, GitError> {
        let repo = &self.repo;
        let step = "reading history";
        within_limit(repo, tree, MAX_TREE_BYTES, || match path {
            "" => "the repository's root".to_string(),
            path => path.to_string(),
        })?;
        let tree = repo.find_tree(tree).map_err(|e| local(step, e))?;
        let decoded = tree.decode().map_err(|e| local(step, e))?;
        Ok(decoded
            .entries
            .iter()
            .filter(|e| !e.mode.is_link() && !e.mode.is_commit())
            .map(|e| {
                (
                    e.filename.to_str_lossy().into_owned(),
                    e.mode.is_tree(),
                    e.oid.to_owned(),
                )
            })
            .collect())
    }

    /// The bytes of a blob (refused past [`MAX_FILE_BYTES`]).
    pub fn blob(&self, id: ObjectId) -> Result<Vec<u8>, GitError> {
        let repo = &self.repo;
        within_limit(repo, id, MAX_FILE_BYTES, || format!("file {id}"))?;
        let blob = repo
            .find_blob(id)
            .map_err(|e| local("reading history", e))?;
        Ok(blob.data.clone())
    }

    /// Whether `id` is present (a shallow mirror lacks what is past its boundary).
    pub fn has(&self, id: ObjectId) -> bool {
        self.repo.has_object(id)
    }
}

/// The author (and committer) of bump commits.
#[derive(Debug, Clone)]
pub struct Author {
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
}
