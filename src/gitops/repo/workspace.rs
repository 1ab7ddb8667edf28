//! A commit's files written out to a directory for the renderer (kustomize reads files, not
//! Git objects) — only what a kustomization reaches, never the whole tree: the
//! kustomization, and every path one of its values names that the tree has (resources,
//! bases, components, patches, generator files…), directories followed through their own
//! kustomizations. The files a chain of bumps changes are written over them, and put back
//! when a bump is refused. Symbolic links and submodules are not written (kustomize then
//! fails where it needed one, and the check says so). Removed on drop.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use gix::ObjectId;
use sha2::{Digest as _, Sha256};

use crate::gitops::store::{Batch, Store};

/// The most files written out for one pass's checks.
const MAX_FILES: usize = 20_000;
/// The most bytes written out.
const MAX_BYTES: usize = 256 << 20;
/// The names kustomize reads a directory's kustomization from.
const KUSTOMIZATIONS: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// What a directory's build reads: its files, and why it cannot be built, if it cannot.
#[derive(Debug, Clone, Default)]
pub struct Closure {
    /// Every file, relative to the repository root.
    pub files: BTreeSet<PathBuf>,
    /// A local path a kustomization names that the tree lacks (kustomize would fail).
    pub missing: Option<String>,
}

/// A directory holding some of a commit's files (under `root/tree`) and a home for the
/// renderer. Files are written out only when a build needs them ([`Workspace::materialize`]),
/// as the chain has them ([`Workspace::set`]) or else as the base commit does.
pub struct Workspace {
    root: PathBuf,
    /// Files are read through short-lived handles (a handle's caches grow with what it
    /// reads, and every destination of a pass prepares at once); trees through one.
    store: Store,
    trees_handle: Batch,
    base: ObjectId,
    /// Files the chain changed, as it has them now.
    overrides: BTreeMap<PathBuf, String>,
    /// Every file on disk, with its text's hash.
    on_disk: BTreeMap<PathBuf, [u8; 32]>,
    /// Each directory's closure, once worked out.
    closures: BTreeMap<PathBuf, Closure>,
    /// Whether each path looked up is a directory, a file, or neither, in the base.
    kinds: BTreeMap<PathBuf, Option<bool>>,
    /// The entries of each directory looked into.
    children: BTreeMap<PathBuf, Vec<(String, bool, ObjectId)>>,
    bytes: usize,
}

impl Workspace {
    /// An empty workspace under `under` for the files of `base`.
    pub fn new(store: &Store, base: ObjectId, under: &Path) -> Result<Self, String> {
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root = under.join(format!("render-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("home"))
            .and_then(|()| std::fs::create_dir_all(root.join("tree")))
            .map_err(|e| format!("preparing a directory for the renderer: {e}"))?;
        Ok(Self {
            root,
            store: store.clone(),
            trees_handle: store.batch(),
            base,
            overrides: BTreeMap::new(),
            on_disk: BTreeMap::new(),
            closures: BTreeMap::new(),
            kinds: BTreeMap::new(),
            children: BTreeMap::new(),
            bytes: 0,
        })
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

    /// What building `dir` reads (nothing is written yet).
    pub fn closure(&mut self, dir: &Path) -> Result<Closure, String> {
        if let Some(c) = self.closures.get(dir) {
            return Ok(c.clone());
        }
        let mut closure = Closure::default();
        let mut seen = BTreeSet::new();
        self.reach(dir, &mut closure, &mut seen);
        self.closures.insert(dir.to_path_buf(), closure.clone());
        Ok(closure)
    }

    /// A digest of what `closure`'s files hold now (with every change set): two builds of
    /// the same directory over the same digest render the same.
    pub fn digest(&self, closure: &Closure) -> [u8; 32] {
        let mut h = Sha256::new();
        for f in &closure.files {
            h.update(f.to_string_lossy().as_bytes());
            h.update([0]);
            h.update(Sha256::digest(self.text(f).unwrap_or_default().as_bytes()));
        }
        h.finalize().into()
    }

    /// Write out `closure`'s files as they are now, where the disk holds something else.
    pub fn materialize(&mut self, closure: &Closure) -> Result<(), String> {
        for path in &closure.files {
            let text = self.text(path).unwrap_or_default();
            let hash: [u8; 32] = Sha256::digest(text.as_bytes()).into();
            if self.on_disk.get(path) == Some(&hash) {
                continue;
            }
            if !self.on_disk.contains_key(path) {
                self.bytes += text.len();
                if self.on_disk.len() >= MAX_FILES || self.bytes > MAX_BYTES {
                    return Err(format!(
                        "the kustomizations reach more than the renderer is given ({MAX_FILES} files, {} MiB)",
                        MAX_BYTES >> 20
                    ));
                }
            }
            let at = self
                .path(path)
                .ok_or_else(|| format!("{} is not a plain relative path", path.display()))?;
            if let Some(dir) = at.parent() {
                std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            }
            std::fs::write(&at, &text).map_err(|e| format!("writing {}: {e}", path.display()))?;
            self.on_disk.insert(path.clone(), hash);
        }
        Ok(())
    }

    /// The chain now has `text` at `path` (relative to the repository's root).
    pub fn set(&mut self, path: &Path, text: &str) {
        self.overrides.insert(path.to_path_buf(), text.to_string());
    }

    /// Add what the kustomization in `dir` reads to `closure`.
    fn reach(&mut self, dir: &Path, closure: &mut Closure, seen: &mut BTreeSet<PathBuf>) {
        if !seen.insert(dir.to_path_buf()) {
            return;
        }
        let Some((file, text)) = KUSTOMIZATIONS
            .iter()
            .find_map(|name| Some((dir.join(name), self.text(&dir.join(name))?)))
        else {
            closure
                .missing
                .get_or_insert_with(|| format!("{} has no kustomization", shown(dir)));
            return;
        };
        closure.files.insert(file);
        let Ok(docs) = crate::yaml::parse(&text) else {
            // kustomize says what is wrong with it.
            return;
        };
        // Any value that names a path of the tree is read by the build (resources,
        // patches, generators' files, …): a file is taken, a directory followed.
        let mut values = Vec::new();
        let mut listed = Vec::new();
        for doc in &docs {
            crate::manifest::walk(&doc.root, None, &mut |_, node| {
                if let Some(s) = node.as_scalar() {
                    values.push(s.value.clone());
                }
            });
            for key in ["resources", "bases", "components"] {
                if let Some(crate::yaml::NodeKind::Sequence(items)) =
                    doc.root.get(key).map(|n| &n.kind)
                {
                    listed.extend(
                        items
                            .iter()
                            .filter_map(|i| i.as_scalar())
                            .map(|s| s.value.clone()),
                    );
                }
            }
        }
        // A resource that is a local path the tree lacks: the build would fail, and
        // nothing more needs finding out.
        for value in listed {
            let missing = looks_local(&value)
                && within(dir, &value).is_none_or(|path| self.kind(&path).is_none());
            if missing {
                closure.missing = Some(format!(
                    "{} lists {value}, which the repository lacks",
                    shown(dir)
                ));
                return;
            }
        }
        for value in values {
            let Some(path) = within(dir, &value) else {
                continue;
            };
            match self.kind(&path) {
                Some(true) => self.reach(&path, closure, seen),
                Some(false) => {
                    closure.files.insert(path);
                }
                None => {}
            }
            if closure.missing.is_some() {
                return;
            }
        }
    }

    /// Whether `path` is a directory (`true`) or a file (`false`) of the base; `None`
    /// when it is neither. Remembered.
    fn kind(&mut self, path: &Path) -> Option<bool> {
        if let Some(k) = self.kinds.get(path) {
            return *k;
        }
        let k = self.look_up(path);
        self.kinds.insert(path.to_path_buf(), k);
        k
    }

    fn look_up(&mut self, path: &Path) -> Option<bool> {
        if path.as_os_str().is_empty() {
            return Some(true);
        }
        let (name, parent) = (path.file_name()?, path.parent().unwrap_or(Path::new("")));
        let name = name.to_string_lossy();
        self.children(parent)?
            .iter()
            .find(|(n, ..)| *n == name)
            .map(|(_, is_tree, _)| *is_tree)
    }

    /// The entries of directory `dir` of the base (name, whether a tree, id); each tree
    /// decoded once.
    fn children(&mut self, dir: &Path) -> Option<&Vec<(String, bool, ObjectId)>> {
        if !self.children.contains_key(dir) {
            let id = match (dir.parent(), dir.file_name()) {
                (Some(parent), Some(name)) => {
                    let name = name.to_string_lossy();
                    let (_, is_tree, id) = self
                        .children(parent)?
                        .iter()
                        .find(|(n, ..)| *n == name)?
                        .clone();
                    is_tree.then_some(id)?
                }
                _ => self.trees_handle.tree_of(self.base).ok()?,
            };
            let entries = self
                .trees_handle
                .tree_entries(id, &dir.to_string_lossy())
                .ok()?;
            self.children.insert(dir.to_path_buf(), entries);
        }
        self.children.get(dir)
    }

    /// The text of a file as the chain has it, else as the base does.
    fn text(&self, path: &Path) -> Option<String> {
        if let Some(text) = self.overrides.get(path) {
            return Some(text.clone());
        }
        let file = self.store.read(self.base, path).ok()??;
        String::from_utf8(file.content).ok()
    }
}

/// `value` as a path relative to `dir`, when it stays inside the repository.
fn within(dir: &Path, value: &str) -> Option<PathBuf> {
    if value.is_empty() || value.contains("://") || value.starts_with('/') || value.contains('\n') {
        return None;
    }
    let mut out = dir.to_path_buf();
    for part in value.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if !out.pop() {
                    return None;
                }
            }
            p => out.push(p),
        }
    }
    Some(out)
}

/// Whether a `resources:` value is meant as a local path, not a remote base
/// (`https://…`, `git@host:…`, `github.com/org/repo//dir?ref=v1`).
fn looks_local(value: &str) -> bool {
    let mut parts = value.split('/');
    let first = parts.next().unwrap_or("");
    let host_like = first.contains('.') && first != "." && first != ".." && parts.next().is_some();
    !(value.contains("://") || value.starts_with("git@") || value.contains('?') || host_like)
}

fn shown(dir: &Path) -> String {
    match dir.as_os_str().is_empty() {
        true => ".".into(),
        false => dir.display().to_string(),
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
