//! [`Repo`]: the GitOps repository as the engine sees it. A bare mirror in the cache
//! directory (created on first use, shallow at first), fetched each pass; files read at the
//! branch's tip; bumps committed without a worktree ([`Repo::commit`], one commit each) and
//! pushed to a branch in one push ([`Repo::push`]). [`Repo::apply`] joins them: on a
//! non-fast-forward it fetches and commits again on the new tip — a bump is compare-and-swap,
//! so a file a person changed in between is left to them — and when the remote rejects the
//! push, it narrows the rejection down to the commits the remote refused, so that the
//! others land.
//!
//! Every `git` command and the mirror's lock have time limits; gix work runs on blocking
//! threads, never on the async workers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use backon::BackoffBuilder;
use gix::ObjectId;
use gix::objs::tree::EntryKind;
use jiff::Timestamp;

use super::error::{GitError, GitErrorKind};
use super::git::{Git, RemoteAuth, parse_porcelain, redact_urls, remote_lines};
use super::message::Record;
use super::store::{Author, Store};
use crate::manifest;

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
}

impl RepoConfig {
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

/// What became of one bump.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Committed and pushed: the commit on the branch.
    Landed(ObjectId),
    /// The file already held the value (or another promoter pushed the same commit).
    AlreadyInPlace,
    /// The file no longer held the expected value: a person changed it; dropped, and
    /// decided afresh on the next pass.
    Superseded {
        /// What the file held instead.
        found: Option<String>,
    },
    /// It could not be made or the remote refused it.
    Failed(GitError),
}

/// What became of a set of bumps, in their order.
#[derive(Debug, Default)]
pub struct Report {
    /// Each bump's record and outcome.
    pub outcomes: Vec<(Record, Outcome)>,
    /// Pushes made.
    pub pushes: usize,
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
    fn head_at(&self, n: usize) -> Option<ObjectId> {
        match n {
            0 => self.base,
            n => self.commits.get(n - 1).map(|(_, id)| *id),
        }
    }
}

/// What a push did.
#[derive(Debug)]
pub enum Pushed {
    /// The branch now points at the commit.
    Done,
    /// The branch already pointed at it.
    AlreadyThere,
    /// The branch moved on: fetch and commit again.
    Behind,
    /// The remote refused it (a hook, branch protection), with its message.
    Rejected(GitError),
}

/// The GitOps repository.
pub struct Repo {
    config: RepoConfig,
    dir: PathBuf,
    git: Git,
    store: Store,
    metrics: Option<crate::metrics::GitPushes>,
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
        let git = Git::new(&root, &config.url, config.auth.clone(), config.git_timeout)?;
        let _lock = lock(&dir, config.lock_timeout).await?;
        if !dir.join("HEAD").is_file() {
            let tmp = root.join(format!(
                "{}.init-{}",
                mirror_name(&config.url),
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
        Ok(Self {
            config,
            dir,
            git,
            store,
            metrics: None,
        })
    }

    /// Count pushes by result in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::GitPushes) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The remote URL without user info, for messages.
    pub fn url(&self) -> String {
        redact_urls(&self.config.url)
    }

    /// The branch bumps are pushed to.
    pub fn branch(&self) -> &str {
        &self.config.branch
    }

    /// Fetch the branch; returns its tip.
    pub async fn fetch(&self) -> Result<ObjectId, GitError> {
        let _lock = lock(&self.dir, self.config.lock_timeout).await?;
        self.fetch_locked().await
    }

    async fn fetch_locked(&self) -> Result<ObjectId, GitError> {
        let step = format!("fetching {} from {}", self.config.branch, self.url());
        let refspec = format!("+refs/heads/{}:{TIP_REF}", self.config.branch);
        let depth = match (self.store.resolve(TIP_REF)?, self.config.depth) {
            (None, Some(d)) => Some(format!("--depth={d}")),
            _ => None,
        };
        self.fetch_ref(&refspec, depth.as_deref(), &step).await?;
        self.store.resolve(TIP_REF)?.ok_or_else(|| {
            GitError::new(GitErrorKind::NotFound, &step, "the branch does not exist")
        })
    }

    /// `git fetch` of one refspec from the remote into the mirror (with one extra option,
    /// such as a depth), quietly and without tags or FETCH_HEAD.
    async fn fetch_ref(
        &self,
        refspec: &str,
        option: Option<&str>,
        step: &str,
    ) -> Result<(), GitError> {
        let mut args = vec!["fetch", "--quiet", "--no-tags", "--no-write-fetch-head"];
        args.extend(option);
        args.extend(["--", &self.config.url, refspec]);
        self.git.run(&self.dir, &args, step).await.map(|_| ())
    }

    /// Whether the mirror lacks older history (it was fetched with a depth).
    pub fn is_shallow(&self) -> bool {
        !self.store.shallow_boundary().is_empty()
    }

    /// Fetch `commits` more of the history behind a shallow mirror's boundary (for history
    /// queries that reach it); nothing when the mirror is complete.
    pub async fn deepen(&self, commits: u32) -> Result<(), GitError> {
        let _lock = lock(&self.dir, self.config.lock_timeout).await?;
        if !self.is_shallow() {
            return Ok(());
        }
        let step = format!(
            "fetching {commits} more commits of {} from {}",
            self.config.branch,
            self.url()
        );
        let refspec = format!("+refs/heads/{}:{TIP_REF}", self.config.branch);
        let option = format!("--deepen={commits}");
        self.fetch_ref(&refspec, Some(&option), &step).await?;
        Ok(())
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

    /// Push `commit` to `branch` (one `git push`), and say what the remote did.
    pub async fn push(&self, commit: ObjectId, branch: &str) -> Result<Pushed, GitError> {
        self.push_leased(commit, branch, None).await
    }

    /// Force-push `commit` to our own `branch`, only if the remote branch is still at
    /// `expected` (`None`: it must not exist) — a lease, so that nobody's push is lost.
    pub async fn force_push(
        &self,
        commit: ObjectId,
        branch: &str,
        expected: Option<ObjectId>,
    ) -> Result<Pushed, GitError> {
        self.push_leased(commit, branch, Some(expected)).await
    }

    async fn push_leased(
        &self,
        commit: ObjectId,
        branch: &str,
        lease: Option<Option<ObjectId>>,
    ) -> Result<Pushed, GitError> {
        let pushed = self.push_once(commit, branch, lease).await;
        if let Some(m) = &self.metrics {
            m.push(match &pushed {
                Ok(Pushed::Done | Pushed::AlreadyThere) => "ok",
                Ok(Pushed::Behind) => "behind",
                Ok(Pushed::Rejected(_)) => "rejected",
                Err(_) => "error",
            });
        }
        pushed
    }

    async fn push_once(
        &self,
        commit: ObjectId,
        branch: &str,
        lease: Option<Option<ObjectId>>,
    ) -> Result<Pushed, GitError> {
        let step = format!("pushing to {branch} on {}", self.url());
        let refspec = format!("{commit}:refs/heads/{branch}");
        let lease = lease.map(|expected| {
            format!(
                "--force-with-lease=refs/heads/{branch}:{}",
                expected.map(|e| e.to_string()).unwrap_or_default()
            )
        });
        let mut args = vec!["push", "--porcelain"];
        if let Some(l) = &lease {
            args.push(l);
        }
        args.extend(["--", &self.config.url, &refspec]);
        let (ok, out) = self.git.spawn(&self.dir, &args, &step).await?;
        let target = format!("refs/heads/{branch}");
        let line = parse_porcelain(&out.stdout)
            .into_iter()
            .find(|r| r.remote_ref == target);
        let rejected = |summary: String| {
            let remote = remote_lines(&out.stderr);
            let detail = if remote.is_empty() {
                summary
            } else {
                format!("{summary} (remote said: {remote})")
            };
            Pushed::Rejected(GitError::new(
                GitErrorKind::Rejected,
                &step,
                redact_urls(&detail),
            ))
        };
        Ok(match line {
            Some(r) if r.flag == '=' && ok => Pushed::AlreadyThere,
            Some(r) if matches!(r.flag, ' ' | '*' | '+') && ok => Pushed::Done,
            // Another push won the race for the ref on the server: the same as non-fast-forward.
            Some(r)
                if r.flag == '!'
                    && (r.summary.contains("failed to update ref")
                        || r.summary.contains("failed to lock")
                        || out.stderr.contains("cannot lock ref")) =>
            {
                Pushed::Behind
            }
            Some(r) if r.flag == '!' && r.summary.contains("[remote rejected]") => {
                rejected(r.summary)
            }
            Some(r)
                if r.flag == '!'
                    && ["non-fast-forward", "fetch first", "stale info"]
                        .iter()
                        .any(|w| r.summary.contains(w)) =>
            {
                Pushed::Behind
            }
            Some(r) if r.flag == '!' => rejected(r.summary),
            _ => {
                let e = self.git.classify(&step, &out.stderr);
                if e.kind == GitErrorKind::Rejected {
                    Pushed::Rejected(e)
                } else {
                    return Err(e);
                }
            }
        })
    }

    /// Where `branch` points on the remote now (`None`: no such branch).
    pub async fn remote_head(&self, branch: &str) -> Result<Option<ObjectId>, GitError> {
        let step = format!("looking up {branch} on {}", self.url());
        let target = format!("refs/heads/{branch}");
        let out = self
            .git
            .run(
                &self.dir,
                &["ls-remote", "--", &self.config.url, &target],
                &step,
            )
            .await?;
        Ok(out
            .stdout
            .split_whitespace()
            .next()
            .and_then(|id| ObjectId::from_hex(id.as_bytes()).ok()))
    }

    /// The commits of `branch` that the fetched tip of the main branch lacks, newest
    /// first, with their messages (to tell ours from a person's).
    pub async fn commits_ahead(&self, branch: &str) -> Result<Vec<(ObjectId, String)>, GitError> {
        let _lock = lock(&self.dir, self.config.lock_timeout).await?;
        let step = format!("reading {branch} from {}", self.url());
        let local = format!("refs/tagpromoter/branches/{branch}");
        let refspec = format!("+refs/heads/{branch}:{local}");
        self.fetch_ref(&refspec, None, &step).await?;
        let out = self
            .git
            .run(
                &self.dir,
                &[
                    "rev-list",
                    "--format=%B%x00",
                    &local,
                    &format!("^{TIP_REF}"),
                ],
                &step,
            )
            .await?;
        let mut commits = Vec::new();
        for chunk in out.stdout.split('\0') {
            let chunk = chunk.trim_start_matches('\n');
            let Some(rest) = chunk.strip_prefix("commit ") else {
                continue;
            };
            let (id, message) = rest.split_once('\n').unwrap_or((rest, ""));
            if let Ok(id) = ObjectId::from_hex(id.trim().as_bytes()) {
                commits.push((id, message.to_string()));
            }
        }
        Ok(commits)
    }

    /// Commit every bump and push them to the branch: rebased and retried when the branch
    /// moves, narrowed when the remote rejects some of them. Bumps a person overtook are
    /// dropped. Verifies that the remote holds what was reported landed.
    pub async fn apply(&self, bumps: &[Bump], time: Timestamp) -> Result<Report, GitError> {
        let _lock = lock(&self.dir, self.config.lock_timeout).await?;
        let mut outcomes: Vec<Option<Outcome>> = vec![None; bumps.len()];
        let mut pushes = 0;
        // A failure part-way (the network, a local error) fails what had not landed yet;
        // what landed before it is reported landed.
        if let Err(e) = self
            .apply_rounds(bumps, time, &mut outcomes, &mut pushes)
            .await
        {
            if outcomes.iter().all(Option::is_none) {
                return Err(e);
            }
            for o in outcomes.iter_mut().filter(|o| o.is_none()) {
                *o = Some(Outcome::Failed(e.clone()));
            }
        }
        let outcomes = bumps
            .iter()
            .zip(outcomes)
            .map(|(b, o)| {
                let o = o.unwrap_or(Outcome::AlreadyInPlace);
                (b.record.clone(), o)
            })
            .collect();
        Ok(Report { outcomes, pushes })
    }

    /// The rounds of [`Repo::apply`]: commit what is pending on the fetched tip, push,
    /// narrow, retry; each bump's outcome set as soon as it is known.
    async fn apply_rounds(
        &self,
        bumps: &[Bump],
        time: Timestamp,
        outcomes: &mut [Option<Outcome>],
        pushes: &mut usize,
    ) -> Result<(), GitError> {
        let branch = self.config.branch.clone();
        let mut backoff = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(2))
            .with_max_times(self.config.max_attempts.saturating_sub(1))
            .with_jitter()
            .build();
        let mut behind = 0;
        let mut refused_before = false;
        loop {
            let pending: Vec<usize> = (0..bumps.len())
                .filter(|i| outcomes[*i].is_none())
                .collect();
            if pending.is_empty() {
                break;
            }
            let tip = self.fetch_locked().await?;
            let todo: Vec<Bump> = pending.iter().map(|i| bumps[*i].clone()).collect();
            let chain = self.commit(tip, &todo, time).await?;
            for (k, outcome) in &chain.skipped {
                outcomes[pending[*k]] = Some(outcome.clone());
            }
            if chain.commits.is_empty() {
                continue;
            }
            // Find the first commit the remote refuses, pushing prefixes of the chain (a
            // prefix longer than a refused one is refused too; each accepted prefix lands).
            // The whole chain first, bisecting a refusal. Once the remote has refused one,
            // it likely refuses more (a hook on prod's files): later rounds probe from the
            // first commit, galloping (1, 2, 4, … past what landed) and bisecting once a
            // probe overshoots. One refused bump among n costs O(log n) pushes; n refused
            // bumps O(n), never n·log n.
            let n = chain.commits.len();
            let mut landed = 0;
            // Commits another promoter had already pushed, identical (same tip, content,
            // second): in place, but not landed by us.
            let mut already = 0;
            let mut refused: Option<(usize, GitError)> = None;
            let mut moved = false;
            let mut probe = if refused_before { 1 } else { n };
            let mut step = 1;
            let mut bisecting = !refused_before;
            let mut failure = None;
            loop {
                *pushes += 1;
                let Some(head) = chain.head_at(probe) else {
                    break;
                };
                let pushed = match self.push(head, &branch).await {
                    Ok(pushed) => pushed,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                };
                if matches!(pushed, Pushed::AlreadyThere) {
                    already = probe;
                }
                match pushed {
                    Pushed::Done | Pushed::AlreadyThere => {
                        landed = probe;
                        step *= 2;
                    }
                    Pushed::Behind => {
                        moved = true;
                        break;
                    }
                    Pushed::Rejected(e) => {
                        // A gallop overshot: the refused commit lies between.
                        bisecting |= probe > landed + 1;
                        refused = Some((probe, e));
                    }
                }
                let hi = refused.as_ref().map_or(n + 1, |(hi, _)| *hi);
                if landed == n || hi - landed <= 1 {
                    break;
                }
                probe = if bisecting {
                    landed + (hi - landed) / 2
                } else {
                    (landed + step).min(hi - 1)
                };
            }
            refused_before = refused.is_some();
            if landed > 0 {
                let head = chain.head_at(landed).unwrap_or(tip);
                match self.verify(head, &branch).await {
                    Ok(()) => {}
                    // The branch does not hold what git said it pushed: not landed.
                    Err(e) if e.kind == GitErrorKind::Conflict => return Err(e),
                    // Cannot ask: git's own report of the push stands.
                    Err(e) => {
                        tracing::warn!(error = %e, "could not check the push; git reported it done")
                    }
                }
                for (i, (k, id)) in chain.commits[..landed].iter().enumerate() {
                    outcomes[pending[*k]] = Some(if i < already {
                        Outcome::AlreadyInPlace
                    } else {
                        Outcome::Landed(*id)
                    });
                }
                self.git
                    .run(
                        &self.dir,
                        &["update-ref", TIP_REF, &head.to_string()],
                        "recording the pushed tip",
                    )
                    .await?;
            }
            if let Some(e) = failure {
                return Err(e);
            }
            if let Some((hi, e)) = refused
                && !moved
            {
                let (k, _) = chain.commits[hi - 1];
                tracing::warn!(promotion = %bumps[pending[k]].record.promotion, environment = %bumps[pending[k]].record.environment, error = %e, "the remote refused a bump; the others are pushed without it");
                outcomes[pending[k]] = Some(Outcome::Failed(e));
                continue;
            }
            if moved {
                behind += 1;
                match backoff.next() {
                    Some(wait) => {
                        tracing::info!(attempt = behind, wait = ?wait, "the branch moved while pushing; committing again on its new tip");
                        tokio::time::sleep(wait).await;
                    }
                    None => {
                        let e = GitError::new(
                            GitErrorKind::Conflict,
                            &format!("pushing to {branch} on {}", self.url()),
                            format!("the branch kept moving; gave up after {behind} attempts"),
                        );
                        for o in outcomes.iter_mut().filter(|o| o.is_none()) {
                            *o = Some(Outcome::Failed(e.clone()));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    async fn verify(&self, head: ObjectId, branch: &str) -> Result<(), GitError> {
        let step = format!(
            "checking that {branch} on {} holds the pushed commit",
            self.url()
        );
        let remote = self.remote_head(branch).await?;
        if remote == Some(head) {
            return Ok(());
        }
        // The branch moved on after our push: fine when it still contains our commit.
        if let Some(id) = remote {
            let refspec = format!("+refs/heads/{branch}:{TIP_REF}");
            let _ = self.fetch_ref(&refspec, None, &step).await;
            let (ok, _) = self
                .git
                .spawn(
                    &self.dir,
                    &[
                        "merge-base",
                        "--is-ancestor",
                        &head.to_string(),
                        &id.to_string(),
                    ],
                    &step,
                )
                .await?;
            if ok {
                return Ok(());
            }
        }
        Err(GitError::new(
            GitErrorKind::Conflict,
            &step,
            format!(
                "the push was reported done, and the branch points at {} instead of {head}",
                remote.map_or("nothing".to_string(), |r| r.to_string())
            ),
        ))
    }
}

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

async fn lock(dir: &Path, timeout: Duration) -> Result<Lock, GitError> {
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
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Lock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(GitError::new(
                    GitErrorKind::Local,
                    "locking the local mirror",
                    format!(
                        "another process has held {} for more than {}s; is one stuck?",
                        path.display(),
                        timeout.as_secs()
                    ),
                ));
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
