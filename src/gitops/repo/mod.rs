//! [`Repo`]: the GitOps repository as the engine sees it. A bare mirror in the cache
//! directory (created on first use, shallow at first), fetched each pass; files read at the
//! branch's tip; bumps committed without a worktree ([`Repo::commit`], one commit each) and
//! pushed to a branch in one push ([`Repo::push`]). [`Repo::apply`] joins them: on a
//! non-fast-forward it fetches and commits again on the new tip — a bump is compare-and-swap,
//! so a file a person changed in between is left to them — and when the remote rejects the
//! push, it narrows the rejection down to the commits the remote refused, so that the
//! others land.
//!
//! One file per concern: `mirror` (the local mirror, its lock, fetching and deepening),
//! `chain` (bumps made into commits), `push` (one push and what the remote said),
//! `landing` (commit, push, retry and narrow until every bump has an outcome).
//!
//! Every `git` command and the mirror's lock have time limits; gix work runs on blocking
//! threads, never on the async workers.

mod chain;
mod landing;
mod mirror;
mod push;
mod sightings;
mod workspace;

pub use chain::{Bump, Chain, FileChange, FileEdit, Prepared};
pub use landing::{Outcome, Report};
pub use push::Pushed;

use std::path::{Path, PathBuf};
use std::time::Duration;

use gix::ObjectId;

use super::error::{GitError, GitErrorKind};
use super::git::{Git, RemoteAuth, redact_urls};
use super::store::{Author, Store};
use mirror::{lock, mirror_name};

/// Where the remote is and how to write to it.
#[derive(Debug, Clone)]
pub struct RepoConfig {
    /// The remote URL (https://, ssh://, git@host:path, git://, file://).
    pub url: String,
    /// The branch.
    pub branch: String,
    /// Credentials.
    pub auth: RemoteAuth,
    /// Author and committer of bump commits.
    pub author: Author,
    /// The cache directory that holds mirrors.
    pub cache_dir: PathBuf,
    /// Depth of the first fetch (`None`: full history).
    pub depth: Option<u32>,
    /// Push attempts before giving up with a conflict.
    pub max_attempts: usize,
    /// The longest a `git` command may run.
    pub git_timeout: Duration,
    /// The longest to wait for another process's lock on the mirror.
    pub lock_timeout: Duration,
    /// Keep the last snapshot for the next one (a worker, pass after pass); a process
    /// that reads once (`once`, `plan`) does not hold it.
    pub keep_snapshot: bool,
    /// Whether Kustomize edits are also checked by rendering (`Settings.render`).
    pub render: crate::rules::RenderMode,
}

impl RepoConfig {
    /// Where `destination` (a repository of `settings`, by name, and a branch) is mirrored
    /// under `cache_dir`; `None` when `settings` names no such repository.
    pub fn for_destination(
        settings: &crate::rules::Settings,
        destination: &crate::rules::Destination,
        cache_dir: &Path,
    ) -> Option<Self> {
        let git = settings.repository(&destination.repository)?;
        let mut config = Self::from_settings(git, cache_dir);
        config.branch = destination.branch.clone();
        config.render = settings.render;
        Some(config)
    }

    /// The repository the rules' `Settings.git` names, mirrored under `cache_dir`.
    pub fn from_settings(git: &crate::rules::Git, cache_dir: &Path) -> Self {
        use crate::rules::GitAuth;
        let auth = match &git.auth {
            None => RemoteAuth::None,
            // Forges accept a token as the password of any user name; GitHub wants this one.
            Some(GitAuth::Token { token_file }) => RemoteAuth::Password {
                username: super::git::TOKEN_USER.into(),
                password_file: token_file.clone(),
            },
            Some(GitAuth::Password {
                username,
                password_file,
            }) => RemoteAuth::Password {
                username: username.clone(),
                password_file: password_file.clone(),
            },
            Some(GitAuth::SshKey {
                ssh_key_file,
                known_hosts_file,
            }) => RemoteAuth::Ssh {
                key_file: ssh_key_file.clone(),
                known_hosts: known_hosts_file.clone(),
            },
        };
        Self {
            url: git.url.clone(),
            branch: git.branch.clone(),
            auth,
            author: Author {
                name: git.author.name.clone(),
                email: git.author.email.clone(),
            },
            cache_dir: cache_dir.to_path_buf(),
            depth: Some(DEFAULT_DEPTH),
            max_attempts: DEFAULT_ATTEMPTS,
            git_timeout: DEFAULT_GIT_TIMEOUT,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            keep_snapshot: false,
            render: crate::rules::RenderMode::Auto,
        }
    }
}

/// Commits fetched at first: enough for the soak and hold history of most repositories;
/// older history is fetched when a query needs it.
pub const DEFAULT_DEPTH: u32 = 500;
/// Push attempts per pass before a conflict is reported.
pub const DEFAULT_ATTEMPTS: usize = 8;
/// The longest a `git` command may run by default.
pub const DEFAULT_GIT_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest to wait for the mirror's lock by default (another process fetching a large
/// repository holds it for a while).
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(300);

/// The GitOps repository.
pub struct Repo {
    config: RepoConfig,
    dir: PathBuf,
    git: Git,
    store: Store,
    metrics: Option<crate::metrics::GitPushes>,
    /// The last snapshot read, and what it was asked.
    last: std::sync::Mutex<Option<LastSnapshot>>,
    /// The renderer found for `config.render`.
    renderer: Option<crate::render::Renderer>,
    /// Builds the renderer made, by what they read.
    renders: std::sync::Arc<std::sync::Mutex<chain::RenderCache>>,
}

/// What a snapshot was asked, and what it read.
type LastSnapshot = (
    std::sync::Arc<Vec<super::TargetQuery>>,
    std::sync::Arc<super::Snapshot>,
);

const TIP_REF: &str = "refs/tagpromoter/tip";

impl Repo {
    /// Open (creating on first use) the mirror of `config.url` in the cache directory.
    pub async fn open(config: RepoConfig) -> Result<Self, GitError> {
        let io = |e: std::io::Error| {
            GitError::new(
                GitErrorKind::Local,
                "preparing the cache directory",
                e.to_string(),
            )
        };
        let root = config.cache_dir.join("git");
        std::fs::create_dir_all(&root).map_err(io)?;
        let dir = root.join(mirror_name(&config.url, &config.branch));
        let git = Git::new(&root, &config.url, config.auth.clone(), config.git_timeout)?;
        let _lock = lock(&dir, config.lock_timeout).await?;
        if !dir.join("HEAD").is_file() {
            let tmp = root.join(format!(
                "{}.init-{}",
                mirror_name(&config.url, &config.branch),
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp).map_err(io)?;
            // Never collect garbage behind our back while another process reads objects.
            git.run(
                &tmp,
                &["init", "--bare", "--quiet", "."],
                "creating the local mirror",
            )
            .await?;
            let mut config = std::fs::OpenOptions::new()
                .append(true)
                .open(tmp.join("config"))
                .map_err(io)?;
            std::io::Write::write_all(&mut config, b"[gc]\n\tauto = 0\n").map_err(io)?;
            std::fs::rename(&tmp, &dir).map_err(io)?;
        }
        let store = Store::open(&dir)?;
        let renderer = crate::render::Renderer::find(config.render);
        Ok(Self {
            config,
            dir,
            git,
            store,
            metrics: None,
            last: std::sync::Mutex::new(None),
            renderer,
            renders: Default::default(),
        })
    }

    /// Count pushes by result in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::GitPushes) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Where the last snapshot is kept on disk, beside the mirror.
    pub(super) fn kept_path(&self) -> PathBuf {
        self.dir.with_extension("snapshot")
    }

    /// The snapshot read last, and what it was asked.
    pub(super) fn last_snapshot(&self) -> Option<LastSnapshot> {
        self.last.lock().ok().and_then(|l| l.clone())
    }

    /// Keep `read` (asked `queries`) for the next pass.
    pub(super) fn remember_snapshot(
        &self,
        queries: std::sync::Arc<Vec<super::TargetQuery>>,
        read: std::sync::Arc<super::Snapshot>,
    ) {
        if !self.config.keep_snapshot {
            return;
        }
        if let Ok(mut last) = self.last.lock() {
            *last = Some((queries, read));
        }
    }

    /// How Kustomize edits are rendered for their check.
    fn render_check(&self) -> Option<chain::RenderCheck> {
        (self.config.render != crate::rules::RenderMode::Never).then(|| chain::RenderCheck {
            renderer: self.renderer.clone(),
            required: self.config.render == crate::rules::RenderMode::Always,
            scratch: self.config.cache_dir.join("render"),
            cache: self.renders.clone(),
        })
    }

    /// Where it is fetched from and pushed to.
    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// The remote URL without user info, for messages.
    pub fn url(&self) -> String {
        redact_urls(&self.config.url)
    }

    /// The branch bumps are pushed to.
    pub fn branch(&self) -> &str {
        &self.config.branch
    }

    /// The tip fetched last.
    pub fn tip(&self) -> Result<Option<ObjectId>, GitError> {
        self.store.resolve(TIP_REF)
    }

    /// The object store (for history queries, on a blocking thread).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The text of `path` at the tip; `Ok(None)` when absent.
    pub fn read(&self, path: &Path) -> Result<Option<String>, GitError> {
        let Some(tip) = self.tip()? else {
            return Ok(None);
        };
        self.read_at(tip, path)
    }

    /// The text of `path` at `commit`.
    pub fn read_at(&self, commit: ObjectId, path: &Path) -> Result<Option<String>, GitError> {
        read_text(&self.store, commit, path)
    }

    /// `commit` and its ancestors in the mirror (every parent, at most [`MAX_ANCESTRY`]):
    /// a deploy controller that runs `commit` runs what each of them wrote. Empty when
    /// `commit` is not in the mirror (one it has not fetched).
    pub async fn ancestry(&self, commit: ObjectId) -> std::collections::HashSet<ObjectId> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            crate::gitops::history::ancestry(&store, commit, MAX_ANCESTRY)
        })
        .await
        .unwrap_or_default()
    }
}

/// The most commits [`Repo::ancestry`] visits.
pub const MAX_ANCESTRY: usize = 10_000;

fn read_text(store: &Store, commit: ObjectId, path: &Path) -> Result<Option<String>, GitError> {
    match store.read(commit, path)? {
        None => Ok(None),
        Some(f) => String::from_utf8(f.content).map(Some).map_err(|_| {
            GitError::new(
                GitErrorKind::Target,
                &format!("reading {}", path.display()),
                "is not UTF-8 text",
            )
        }),
    }
}
