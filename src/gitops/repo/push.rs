//! One push to a branch of the remote, and what the remote did with it; the remote's
//! branches read back.

use gix::ObjectId;

use super::mirror::lock;
use super::{Repo, TIP_REF};
use crate::gitops::error::{GitError, GitErrorKind};
use crate::gitops::git::{parse_porcelain, redact_urls, remote_lines};

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

impl Repo {
    /// Push `commit` to `branch` (one `git push`), and say what the remote did.
    pub async fn push(&self, commit: ObjectId, branch: &str) -> Result<Pushed, GitError> {
        self.push_leased(commit, &format!("refs/heads/{branch}"), None)
            .await
    }

    /// Force-push `commit` to our own `branch`, only if the remote branch is still at
    /// `expected` (`None`: it must not exist) — a lease, so that nobody's push is lost.
    pub async fn force_push(
        &self,
        commit: ObjectId,
        branch: &str,
        expected: Option<ObjectId>,
    ) -> Result<Pushed, GitError> {
        self.push_leased(commit, &format!("refs/heads/{branch}"), Some(expected))
            .await
    }

    /// Push `commit` to the remote ref `target` (a full name), fast-forward only, or only
    /// while the remote ref is at the lease's commit (`Some(None)`: must not exist).
    pub(super) async fn push_leased(
        &self,
        commit: ObjectId,
        target: &str,
        lease: Option<Option<ObjectId>>,
    ) -> Result<Pushed, GitError> {
        let pushed = self.push_once(commit, target, lease).await;
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

    pub(super) async fn push_once(
        &self,
        commit: ObjectId,
        target: &str,
        lease: Option<Option<ObjectId>>,
    ) -> Result<Pushed, GitError> {
        let shown = target.strip_prefix("refs/heads/").unwrap_or(target);
        let step = format!("pushing to {shown} on {}", self.url());
        let refspec = format!("{commit}:{target}");
        let lease = lease.map(|expected| {
            format!(
                "--force-with-lease={target}:{}",
                expected.map(|e| e.to_string()).unwrap_or_default()
            )
        });
        let mut args = vec!["push", "--porcelain"];
        if let Some(l) = &lease {
            args.push(l);
        }
        args.extend(["--", &self.config.url, &refspec]);
        let (ok, out) = self.git.spawn(&self.dir, &args, &step).await?;
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
        self.fetch_refs(&[&refspec], &[], &step).await?;
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
}
