//! A commit's tree written out to a directory for the renderer (kustomize reads files, not
//! Git objects): the tree once, then the files a chain of bumps changes written over it,
//! and put back when a bump is refused. Symbolic links and submodules are not written
//! (kustomize then fails where it needed one, and the check says so). Removed on drop.

use std::path::{Component, Path, PathBuf};

use gix::ObjectId;

use crate::gitops::store::Store;

/// The most files written out; a larger repository is not rendered.
const MAX_FILES: usize = 100_000;
/// The most bytes written out.
const MAX_BYTES: u64 = 512 << 20;

/// A directory holding a commit's tree (under `root/tree`) and a home for the renderer.
pub struct Workspace {
    root: PathBuf,
}

impl Workspace {
    /// Write `commit`'s tree into a new directory under `under`.
    pub fn export(store: &Store, commit: ObjectId, under: &Path) -> Result<Self, String> {
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root = under.join(format!("render-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let workspace = Self { root };
        let io = |e: std::io::Error| format!("writing the tree out for the renderer: {e}");
        std::fs::create_dir_all(workspace.root.join("home")).map_err(io)?;
        let batch = store.batch();
        let tree = batch.tree_of(commit).map_err(|e| e.to_string())?;
        let (mut files, mut bytes) = (0usize, 0u64);
        let mut todo = vec![(tree, workspace.tree())];
        while let Some((tree, dir)) = todo.pop() {
            std::fs::create_dir_all(&dir).map_err(io)?;
            for (name, is_tree, id) in batch.tree_entries(tree).map_err(|e| e.to_string())? {
                if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\']) {
                    return Err(format!("the tree holds an entry named {name:?}"));
                }
                let path = dir.join(&name);
                if is_tree {
                    todo.push((id, path));
                    continue;
                }
                let blob = batch.blob(id).map_err(|e| e.to_string())?;
                files += 1;
                bytes += blob.len() as u64;
                if files > MAX_FILES || bytes > MAX_BYTES {
                    return Err(format!(
                        "the repository is larger than the renderer is given ({MAX_FILES} files, {} MiB)",
                        MAX_BYTES >> 20
                    ));
                }
                std::fs::write(&path, blob).map_err(io)?;
            }
        }
        Ok(workspace)
    }

    /// The repository's root in the workspace.
    pub fn tree(&self) -> PathBuf {
        self.root.join("tree")
    }

    /// A home directory for the renderer (its caches).
    pub fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    /// Where `path` (relative to the repository's root) is in the workspace; `None` for a
    /// path that would leave it.
    pub fn path(&self, path: &Path) -> Option<PathBuf> {
        path.components()
            .all(|c| matches!(c, Component::Normal(_)))
            .then(|| self.tree().join(path))
    }

    /// Write `text` at `path` (relative to the repository's root).
    pub fn write(&self, path: &Path, text: &str) -> Result<(), String> {
        let at = self
            .path(path)
            .ok_or_else(|| format!("{} is not a plain relative path", path.display()))?;
        if let Some(dir) = at.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        std::fs::write(&at, text).map_err(|e| format!("writing {}: {e}", path.display()))
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
