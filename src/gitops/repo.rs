//! [`Repo`]: the GitOps repository as the engine sees it. A bare mirror in the cache
//! directory (created on first use, shallow at first), fetched each pass; files read at the
//! branch's tip; bumps committed without a worktree, one commit each, all pushed at once; on
//! a non-fast-forward, fetch, redo the edits on the new tip (an edit is a function of the
//! file's content, not a byte patch), and push again after a jittered backoff.

use std::path::{Path, PathBuf};
use std::time::Duration;

use backon::BackoffBuilder;
use gix::ObjectId;

use super::error::{GitError, GitErrorKind};
use super::git::{Git, RemoteAuth, parse_porcelain, redact_urls, remote_lines};
use super::message::Record;
use super::store::{Author, Store};

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
}

impl RepoConfig {
    /// The repository the rules' `Settings.git` names, mirrored under `cache_dir`.
    pub fn from_settings(git: &crate::rules::Git, cache_dir: &Path) -> Self {
        use crate::rules::GitAuth;
        let auth = match &git.auth {
            None => RemoteAuth::None,
            // Forges accept a token as the password of any user name; GitHub wants this one.
            Some(GitAuth::Token { token_file }) => RemoteAuth::Password {
                username: "x-access-token".into(),
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
        }
    }
}

/// Commits fetched at first: enough for the soak and hold history of most repositories;
/// older history is fetched when a query needs it.
pub const DEFAULT_DEPTH: u32 = 500;
/// Push attempts per pass before a conflict is reported.
pub const DEFAULT_ATTEMPTS: usize = 8;

/// The edit a bump makes: a function of the file's current text; `Ok(None)` when the file
/// already holds the value (the bump is then dropped, never an empty commit).
pub type Edit = Box<dyn Fn(&str) -> Result<Option<String>, String> + Send + Sync>;

/// One bump: what to record, which file, and how to change it.
pub struct Bump {
    /// The audit record (commit message).
    pub record: Record,
    /// The file, relative to the repository root.
    pub file: PathBuf,
    /// The change.
    pub edit: Edit,
}

/// What became of a pass's bumps.
#[derive(Debug, Default)]
pub struct Report {
    /// Bumps that landed, with their commit.
    pub landed: Vec<(Record, ObjectId)>,
    /// Bumps whose value was already in place.
    pub already: Vec<Record>,
    /// Bumps that could not be made (the file could not be edited), with why.
    pub failed: Vec<(Record, GitError)>,
    /// Push attempts made.
    pub attempts: usize,
}

/// The GitOps repository.
pub struct Repo {
    config: RepoConfig,
    dir: PathBuf,
    git: Git,
    store: Store,
}

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
        let dir = root.join(mirror_name(&config.url));
        let git = Git::new(&root, config.auth.clone())?;
        let _lock = lock(&dir).await?;
        if !dir.join("HEAD").is_file() {
            let tmp = root.join(format!(
                "{}.init-{}",
                mirror_name(&config.url),
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp).map_err(io)?;
            git.run(
                &tmp,
                &["init", "--bare", "--quiet", "."],
                "creating the local mirror",
            )
            .await?;
            // Never collect garbage behind our back while another process reads objects.
            git.run(
                &tmp,
                &["config", "gc.auto", "0"],
                "creating the local mirror",
            )
            .await?;
            std::fs::rename(&tmp, &dir).map_err(io)?;
        }
        let store = Store::open(&dir)?;
        Ok(Self {
            config,
            dir,
            git,
            store,
        })
    }

    /// The remote URL without user info, for messages.
    pub fn url(&self) -> String {
        redact_urls(&self.config.url)
    }

    /// Fetch the branch; returns its tip.
    pub async fn fetch(&self) -> Result<ObjectId, GitError> {
        let _lock = lock(&self.dir).await?;
        self.fetch_locked().await
    }

    async fn fetch_locked(&self) -> Result<ObjectId, GitError> {
        let step = format!("fetching {} from {}", self.config.branch, self.url());
        let refspec = format!("+refs/heads/{}:{TIP_REF}", self.config.branch);
        let mut args = vec!["fetch", "--quiet", "--no-tags", "--no-write-fetch-head"];
        let depth;
        if self.store.resolve(TIP_REF)?.is_none()
            && let Some(d) = self.config.depth
        {
            depth = format!("--depth={d}");
            args.push(&depth);
        }
        args.extend(["--", &self.config.url, &refspec]);
        self.git.run(&self.dir, &args, &step).await?;
        self.store.resolve(TIP_REF)?.ok_or_else(|| {
            GitError::new(GitErrorKind::NotFound, &step, "the branch does not exist")
        })
    }

    /// Fetch the whole history (for history queries that reach a shallow mirror's boundary).
    pub async fn deepen(&self) -> Result<(), GitError> {
        let _lock = lock(&self.dir).await?;
        if self.store.shallow_boundary().is_empty() {
            return Ok(());
        }
        let step = format!(
            "fetching the history of {} from {}",
            self.config.branch,
            self.url()
        );
        let refspec = format!("+refs/heads/{}:{TIP_REF}", self.config.branch);
        self.git
            .run(
                &self.dir,
                &[
                    "fetch",
                    "--quiet",
                    "--no-tags",
                    "--no-write-fetch-head",
                    "--unshallow",
                    "--",
                    &self.config.url,
                    &refspec,
                ],
                &step,
            )
            .await?;
        Ok(())
    }

    /// The tip fetched last.
    pub fn tip(&self) -> Result<Option<ObjectId>, GitError> {
        self.store.resolve(TIP_REF)
    }

    /// The object store (for history queries).
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
        match self.store.read(commit, path)? {
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

    /// Commit every bump (one commit each, chained on the tip) and push them in one push,
    /// rebasing on conflicts; verify that the remote branch holds the result.
    pub async fn apply(&self, bumps: &[Bump]) -> Result<Report, GitError> {
        let _lock = lock(&self.dir).await?;
        let mut backoff = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(2))
            .with_max_times(self.config.max_attempts.saturating_sub(1))
            .with_jitter()
            .build();
        let mut attempts = 0;
        loop {
            let tip = self.fetch_locked().await?;
            let mut report = self.commit_all(tip, bumps)?;
            attempts += 1;
            report.attempts = attempts;
            let Some(head) = report.landed.last().map(|(_, id)| *id) else {
                return Ok(report);
            };
            match self.push(head).await? {
                // Another promoter made the very same commit (same tip, content, second) and
                // pushed it first: the bumps are in place, but not by us.
                Pushed::AlreadyThere => {
                    self.verify(head).await?;
                    let records = report.landed.drain(..).map(|(r, _)| r);
                    report.already.extend(records);
                    return Ok(report);
                }
                Pushed::Done => {
                    self.verify(head).await?;
                    self.git
                        .run(
                            &self.dir,
                            &["update-ref", TIP_REF, &head.to_string()],
                            "recording the pushed tip",
                        )
                        .await?;
                    return Ok(report);
                }
                Pushed::Behind => match backoff.next() {
                    Some(wait) => {
                        tracing::info!(attempt = attempts, wait = ?wait, "the branch moved while pushing; rebasing the bumps");
                        tokio::time::sleep(wait).await;
                    }
                    None => {
                        return Err(GitError::new(
                            GitErrorKind::Conflict,
                            &format!("pushing to {} on {}", self.config.branch, self.url()),
                            format!("the branch kept moving; gave up after {attempts} attempts"),
                        ));
                    }
                },
            }
        }
    }

    /// Build the chain of commits on `tip`.
    fn commit_all(&self, tip: ObjectId, bumps: &[Bump]) -> Result<Report, GitError> {
        let mut report = Report::default();
        let mut head = tip;
        for bump in bumps {
            let file = match self.store.read(head, &bump.file) {
                Ok(Some(f)) => f,
                Ok(None) => {
                    let e = GitError::new(
                        GitErrorKind::Target,
                        &format!("editing {}", bump.file.display()),
                        "the file does not exist on the branch",
                    );
                    report.failed.push((bump.record.clone(), e));
                    continue;
                }
                Err(e) if e.kind == GitErrorKind::Target => {
                    report.failed.push((bump.record.clone(), e));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let step = format!("editing {}", bump.file.display());
            let Ok(text) = String::from_utf8(file.content) else {
                report.failed.push((
                    bump.record.clone(),
                    GitError::new(GitErrorKind::Target, &step, "is not UTF-8 text"),
                ));
                continue;
            };
            match (bump.edit)(&text) {
                Ok(None) => report.already.push(bump.record.clone()),
                Ok(Some(new)) => {
                    head = self.store.commit_file(
                        head,
                        &bump.file,
                        new.as_bytes(),
                        file.kind,
                        &bump.record.message(),
                        &self.config.author,
                    )?;
                    report.landed.push((bump.record.clone(), head));
                }
                Err(why) => report.failed.push((
                    bump.record.clone(),
                    GitError::new(GitErrorKind::Target, &step, why),
                )),
            }
        }
        Ok(report)
    }

    async fn push(&self, head: ObjectId) -> Result<Pushed, GitError> {
        let step = format!("pushing to {} on {}", self.config.branch, self.url());
        let refspec = format!("{head}:refs/heads/{}", self.config.branch);
        let (ok, out) = self
            .git
            .spawn(
                &self.dir,
                &["push", "--porcelain", "--", &self.config.url, &refspec],
                &step,
            )
            .await?;
        let target = format!("refs/heads/{}", self.config.branch);
        let line = parse_porcelain(&out.stdout)
            .into_iter()
            .find(|r| r.remote_ref == target);
        match line {
            Some(r) if r.flag == '=' && ok => Ok(Pushed::AlreadyThere),
            Some(r) if matches!(r.flag, ' ' | '*') && ok => Ok(Pushed::Done),
            // Another push won the race for the ref on the server: the same as non-fast-forward.
            Some(r)
                if r.flag == '!'
                    && (r.summary.contains("failed to update ref")
                        || r.summary.contains("failed to lock")
                        || out.stderr.contains("cannot lock ref")) =>
            {
                Ok(Pushed::Behind)
            }
            Some(r) if r.flag == '!' && r.summary.contains("[remote rejected]") => {
                let remote = remote_lines(&out.stderr);
                let detail = if remote.is_empty() {
                    r.summary
                } else {
                    format!("{} (remote said: {remote})", r.summary)
                };
                Err(GitError::new(
                    GitErrorKind::Rejected,
                    &step,
                    redact_urls(&detail),
                ))
            }
            Some(r)
                if r.flag == '!'
                    && ["non-fast-forward", "fetch first", "stale info"]
                        .iter()
                        .any(|w| r.summary.contains(w)) =>
            {
                Ok(Pushed::Behind)
            }
            Some(r) if r.flag == '!' => Err(GitError::new(
                GitErrorKind::Rejected,
                &step,
                redact_urls(&r.summary),
            )),
            _ => Err(super::git::classify(&step, &out.stderr)),
        }
    }

    async fn verify(&self, head: ObjectId) -> Result<(), GitError> {
        let step = format!(
            "checking that {} on {} holds the pushed commit",
            self.config.branch,
            self.url()
        );
        let target = format!("refs/heads/{}", self.config.branch);
        let out = self
            .git
            .run(
                &self.dir,
                &["ls-remote", "--", &self.config.url, &target],
                &step,
            )
            .await?;
        let remote = out.stdout.split_whitespace().next().unwrap_or_default();
        if remote == head {
            Ok(())
        } else {
            Err(GitError::new(
                GitErrorKind::Conflict,
                &step,
                format!(
                    "the push was reported done, and the branch points at {} instead of {head}",
                    if remote.is_empty() { "nothing" } else { remote }
                ),
            ))
        }
    }
}

enum Pushed {
    Done,
    AlreadyThere,
    Behind,
}

/// A directory name for a URL's mirror: readable, and unique by a hash of the URL.
fn mirror_name(url: &str) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(redact_urls(url).as_bytes());
    let short: String = hash.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let tail: String = url
        .rsplit(['/', ':'])
        .find(|s| !s.is_empty())
        .unwrap_or("repo")
        .trim_end_matches(".git")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    format!("{tail}-{short}.git")
}

/// An exclusive lock on a mirror, shared by every process using the cache directory.
struct Lock {
    _file: std::fs::File,
}

async fn lock(dir: &Path) -> Result<Lock, GitError> {
    let path = dir.with_extension("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| {
            GitError::new(
                GitErrorKind::Local,
                "locking the local mirror",
                format!("{}: {e}", path.display()),
            )
        })?;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Lock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(GitError::new(
                    GitErrorKind::Local,
                    "locking the local mirror",
                    e.to_string(),
                ));
            }
        }
    }
}
