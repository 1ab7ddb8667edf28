//! Bumps made into commits: each edit is compare-and-swap on the file as the chain has it
//! so far, checked for what it makes the cluster run (tagpromoter's model of the target
//! kind, then the renderer for Kustomize), and a bump lands in one commit, all of its
//! edits or none. [`Repo::prepare`] is the same work without the commits, for `plan`.

use std::path::{Path, PathBuf};

use gix::ObjectId;
use gix::objs::tree::EntryKind;
use jiff::Timestamp;

use super::Repo;
use super::landing::Outcome;
use super::workspace::{Closure, Workspace};
use crate::gitops::error::{GitError, GitErrorKind};
use crate::gitops::message::Record;
use crate::gitops::store::{Author, Store};
use crate::manifest;
use crate::render::Renderer;

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

/// A file as a bump leaves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// The file, relative to the repository root.
    pub path: PathBuf,
    /// Its text before the bump (after the bumps before it in the chain).
    pub before: String,
    /// Its text after.
    pub after: String,
    /// Regular or executable.
    pub kind: EntryKind,
}

/// What a chain of bumps does to the files of a base commit, before any commit is made:
/// for each bump, the files it changes, or why it makes no commit. `plan` shows this;
/// [`Repo::commit`] writes it.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// The commit the chain starts from.
    pub base: Option<ObjectId>,
    /// Per bump, in order.
    pub steps: Vec<Result<Vec<FileChange>, Outcome>>,
}

impl Repo {
    /// What `bumps` would do on `base`, each edit compare-and-swap on the file as the
    /// bumps before it leave it, and checked for meaning — by tagpromoter's model of each
    /// target kind, and for Kustomize targets by the renderer, when one is configured.
    /// Writes no object. Runs on a blocking thread.
    pub async fn prepare(&self, base: ObjectId, bumps: &[Bump]) -> Result<Prepared, GitError> {
        let store = self.store.clone();
        let bumps = bumps.to_vec();
        let render = self.render_check();
        tokio::task::spawn_blocking(move || prepare(&store, base, &bumps, render.as_ref()))
            .await
            .map_err(|e| GitError::new(GitErrorKind::Local, "preparing bumps", e.to_string()))?
    }

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
        let render = self.render_check();
        tokio::task::spawn_blocking(move || {
            let prepared = prepare(&store, base, &bumps, render.as_ref())?;
            write_chain(&store, &author, &bumps, prepared, time)
        })
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
            // What the bump writes is what its edits say; the renderer only judges it.
            let bumps = [bump];
            let prepared = prepare(&store, parent, &bumps, None)?;
            let chain = write_chain(&store, &author, &bumps, prepared, info.time)?;
            Ok(chain.commits.first().map(|(_, made)| *made) == Some(id))
        })
        .await
        .map_err(|e| GitError::new(GitErrorKind::Local, "reading a commit", e.to_string()))?
    }
}

/// The commits of what was prepared: one per bump that changes something (or, for a
/// bump with no edit, an empty record), chained on the base.
fn write_chain(
    store: &Store,
    author: &Author,
    bumps: &[Bump],
    prepared: Prepared,
    time: Timestamp,
) -> Result<Chain, GitError> {
    let mut chain = Chain {
        base: prepared.base,
        ..Chain::default()
    };
    let Some(mut head) = prepared.base else {
        return Ok(chain);
    };
    for (i, step) in prepared.steps.into_iter().enumerate() {
        match step {
            Err(outcome) => chain.skipped.push((i, outcome)),
            Ok(changes) if changes.is_empty() && !bumps[i].edits.is_empty() => {
                chain.skipped.push((i, Outcome::AlreadyInPlace));
            }
            Ok(changes) => {
                let changes: Vec<(&Path, &[u8], EntryKind)> = changes
                    .iter()
                    .map(|c| (c.path.as_path(), c.after.as_bytes(), c.kind))
                    .collect();
                head = store.commit(head, &changes, &bumps[i].record.message(), author, time)?;
                chain.commits.push((i, head));
            }
        }
    }
    Ok(chain)
}

/// The files as the chain has them so far: path → (text, kind).
type Files = std::collections::HashMap<PathBuf, (String, EntryKind)>;

/// See [`Repo::prepare`].
fn prepare(
    store: &Store,
    base: ObjectId,
    bumps: &[Bump],
    render: Option<&RenderCheck>,
) -> Result<Prepared, GitError> {
    let mut files = Files::new();
    let mut workspace: Option<Result<Workspace, String>> = None;
    let mut steps = Vec::with_capacity(bumps.len());
    for bump in bumps {
        let step = match edit_files(store, base, &mut files, &bump.edits)? {
            Ok(changes) => match render {
                Some(check) if !changes.is_empty() => check
                    .judge(store, base, &mut workspace, bump, &changes)
                    .map(|()| changes),
                _ => Ok(changes),
            },
            Err(outcome) => Err(outcome),
        };
        if let Ok(changes) = &step {
            for c in changes {
                files.insert(c.path.clone(), (c.after.clone(), c.kind));
            }
        }
        steps.push(step);
    }
    Ok(Prepared {
        base: Some(base),
        steps,
    })
}

/// The files `edits` change, each as it will be (several edits of one file apply in
/// turn), on the files as the chain has them (`files`, else `base`); `Err` with why the
/// bump makes no commit: one edit failed or found a person's value (then none is made: a
/// bump lands whole or not at all).
fn edit_files(
    store: &Store,
    base: ObjectId,
    files: &mut Files,
    edits: &[FileEdit],
) -> Result<Result<Vec<FileChange>, Outcome>, GitError> {
    let mut changes: Vec<FileChange> = Vec::new();
    for edit in edits {
        let step = format!("editing {}", edit.file.display());
        let failed =
            |detail: String| Outcome::Failed(GitError::new(GitErrorKind::Target, &step, detail));
        let at = match changes.iter().position(|c| c.path == edit.file) {
            Some(at) => at,
            None => {
                let (text, kind) = match files.get(&edit.file) {
                    Some((text, kind)) => (text.clone(), *kind),
                    None => {
                        let file = match store.read(base, &edit.file) {
                            Ok(Some(f)) => f,
                            Ok(None) => {
                                return Ok(Err(failed(
                                    "the file does not exist on the branch".into(),
                                )));
                            }
                            Err(e) if e.kind == GitErrorKind::Target => {
                                return Ok(Err(Outcome::Failed(e)));
                            }
                            Err(e) => return Err(e),
                        };
                        let Ok(text) = String::from_utf8(file.content) else {
                            return Ok(Err(failed("is not UTF-8 text".into())));
                        };
                        files.insert(edit.file.clone(), (text.clone(), file.kind));
                        (text, file.kind)
                    }
                };
                changes.push(FileChange {
                    path: edit.file.clone(),
                    before: text.clone(),
                    after: text,
                    kind,
                });
                changes.len() - 1
            }
        };
        let text = &changes[at].after;
        let found = match manifest::read(text, &edit.target) {
            Ok(current) => current.tag,
            Err(e) => return Ok(Err(failed(e.to_string()))),
        };
        if found.as_deref() == Some(edit.wanted.tag.as_str()) && !edit.wanted.pin {
            continue;
        }
        if found != edit.expected {
            return Ok(Err(Outcome::Superseded { found }));
        }
        match manifest::apply(text, &edit.target, &edit.wanted) {
            Ok(manifest::Outcome::Unchanged) => {}
            Ok(manifest::Outcome::Changed(new)) => changes[at].after = new,
            Err(e) => return Ok(Err(failed(e.to_string()))),
        }
    }
    changes.retain(|c| c.before != c.after);
    Ok(Ok(changes))
}

/// The renderer's check of Kustomize edits: how the repository is configured to render.
#[derive(Debug, Clone)]
pub(super) struct RenderCheck {
    /// The renderer, when one was found.
    pub renderer: Option<Renderer>,
    /// `render: always`: a Kustomize bump without a renderer fails.
    pub required: bool,
    /// Where workspaces are made.
    pub scratch: PathBuf,
    /// Builds already made, shared by every prepare of the repository.
    pub cache: std::sync::Arc<std::sync::Mutex<RenderCache>>,
}

impl RenderCheck {
    /// Render each kustomization directory `bump` edits before and after `changes`, and
    /// require that the images changed exactly as intended and nothing else did. A
    /// directory that does not build before the edit (a remote base out of reach, a
    /// Helm chart) is not judged by the renderer; one that builds before and not after
    /// is refused.
    fn judge(
        &self,
        store: &Store,
        base: ObjectId,
        workspace: &mut Option<Result<Workspace, String>>,
        bump: &Bump,
        changes: &[FileChange],
    ) -> Result<(), Outcome> {
        let kustomize: Vec<&FileEdit> = bump
            .edits
            .iter()
            .filter(|e| matches!(e.target, manifest::Target::Kustomize { .. }))
            .collect();
        if kustomize.is_empty() {
            return Ok(());
        }
        let refuse = |step: String, detail: String| {
            Err(Outcome::Failed(GitError::new(
                GitErrorKind::Target,
                &step,
                detail,
            )))
        };
        let Some(renderer) = &self.renderer else {
            if self.required {
                return refuse(
                    "rendering the edit".into(),
                    "render: always is set, and neither kustomize nor kubectl is on the PATH"
                        .into(),
                );
            }
            return Ok(());
        };
        let ws = match workspace.get_or_insert_with(|| Workspace::new(store, base, &self.scratch)) {
            Ok(ws) => ws,
            Err(why) => {
                tracing::warn!(why = %why, "edits are not rendered");
                return Ok(());
            }
        };
        let mut dirs: Vec<(&Path, &FileEdit)> = Vec::new();
        for e in &kustomize {
            let dir = e.file.parent().unwrap_or(Path::new(""));
            if !dirs.iter().any(|(d, _)| *d == dir) {
                dirs.push((dir, e));
            }
        }
        // What each directory's build reads, and its build before the edit (the edited
        // files as the chain has them: already read).
        for c in changes {
            ws.set(&c.path, &c.before);
        }
        let mut before = Vec::new();
        for (dir, _) in &dirs {
            let closure = match ws.closure(dir) {
                Ok(c) => c,
                Err(why) => {
                    tracing::warn!(why = %why, "edits are not rendered");
                    return Ok(());
                }
            };
            let built = match &closure.missing {
                Some(why) => Err(crate::render::RenderError(why.clone())),
                None => self.build(renderer, ws, dir, &closure),
            };
            before.push((closure, built));
        }
        for c in changes {
            ws.set(&c.path, &c.after);
        }
        for ((dir, edit), (closure, before)) in dirs.iter().zip(before) {
            let shown = display(dir);
            let step = format!("checking {shown} with {}", renderer.name());
            let before = match before {
                Ok(text) => text,
                Err(e) => {
                    tracing::warn!(directory = %shown, error = %e, "the directory does not build before the edit; not judged by the renderer");
                    continue;
                }
            };
            let after = match self.build(renderer, ws, dir, &closure) {
                Ok(text) => text,
                Err(e) => {
                    put_back(ws, changes);
                    return refuse(
                        step,
                        format!("the directory builds before the edit and not after it: {e}"),
                    );
                }
            };
            let text = changes
                .iter()
                .find(|c| c.path == edit.file)
                .map_or("", |c| c.after.as_str());
            let manifest::Target::Kustomize { name } = &edit.target else {
                continue;
            };
            let Some(intent) = crate::render::images::Intent::of_edit(text, name, &edit.wanted)
            else {
                continue;
            };
            if let Err(why) = crate::render::images::judge(&before, &after, &intent) {
                put_back(ws, changes);
                return refuse(step, why);
            }
        }
        Ok(())
    }
}

impl RenderCheck {
    /// The build of `dir` as the workspace holds its `closure` now: remembered by what the
    /// closure's files hold, so that the same inputs are never built twice (a retried
    /// push prepares its chain again; a worker's next pass starts where this one ended).
    fn build(
        &self,
        renderer: &Renderer,
        ws: &mut Workspace,
        dir: &Path,
        closure: &Closure,
    ) -> Result<String, crate::render::RenderError> {
        let key = (dir.to_path_buf(), ws.digest(closure));
        if let Some(hit) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return hit;
        }
        ws.materialize(closure)
            .map_err(crate::render::RenderError)?;
        let built = match ws.path(dir) {
            Some(at) => renderer.build(&at, &ws.home()),
            None => Err(crate::render::RenderError(format!(
                "{} is not a plain relative path",
                dir.display()
            ))),
        };
        if let Ok(mut cache) = self.cache.lock() {
            cache.put(key, built.clone());
        }
        built
    }
}

/// Put the files `changes` touched back as they were before them.
fn put_back(ws: &mut Workspace, changes: &[FileChange]) {
    for c in changes {
        ws.set(&c.path, &c.before);
    }
}

/// Builds remembered by (directory, digest of what it reads), a bounded number of them.
#[derive(Debug, Default)]
pub(super) struct RenderCache {
    builds:
        std::collections::HashMap<(PathBuf, [u8; 32]), Result<String, crate::render::RenderError>>,
    bytes: usize,
}

/// The most bytes of builds remembered; past it, the oldest knowledge is dropped whole.
const CACHE_BYTES: usize = 64 << 20;

impl RenderCache {
    fn get(
        &self,
        key: &(PathBuf, [u8; 32]),
    ) -> Option<&Result<String, crate::render::RenderError>> {
        self.builds.get(key)
    }

    fn put(&mut self, key: (PathBuf, [u8; 32]), built: Result<String, crate::render::RenderError>) {
        let size = match &built {
            Ok(text) => text.len(),
            Err(e) => e.0.len(),
        };
        if self.bytes + size > CACHE_BYTES {
            self.builds.clear();
            self.bytes = 0;
        }
        self.bytes += size;
        self.builds.insert(key, built);
    }
}

fn display(dir: &Path) -> String {
    match dir.as_os_str().is_empty() {
        true => ".".into(),
        false => dir.display().to_string(),
    }
}
