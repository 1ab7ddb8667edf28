//! The local mirror: where it lives, its lock (shared by every process using the cache
//! directory), fetching the branch and deepening a shallow history.

use std::path::Path;
use std::time::Duration;

use gix::ObjectId;

use super::{Repo, TIP_REF};
use crate::gitops::error::{GitError, GitErrorKind};
use crate::gitops::git::redact_urls;

impl Repo {
    /// Fetch the branch; returns its tip.
    pub async fn fetch(&self) -> Result<ObjectId, GitError> {
        let _lock = lock(&self.dir, self.config.lock_timeout).await?;
        self.fetch_locked().await
    }

    pub(super) async fn fetch_locked(&self) -> Result<ObjectId, GitError> {
        let step = format!("fetching {} from {}", self.config.branch, self.url());
        let refspec = format!("+refs/heads/{}:{TIP_REF}", self.config.branch);
        // The bot's sightings come with the branch.
        let mut options = vec!["--prune"];
        let depth = match (self.store.resolve(TIP_REF)?, self.config.depth) {
            (None, Some(d)) => Some(format!("--depth={d}")),
            _ => None,
        };
        options.extend(depth.as_deref());
        self.fetch_refs(&[&refspec, super::sightings::REFSPEC], &options, &step)
            .await?;
        self.pack_loose_objects().await;
        self.store.resolve(TIP_REF)?.ok_or_else(|| {
            GitError::new(GitErrorKind::NotFound, &step, "the branch does not exist")
        })
    }

    /// Pack the mirror's loose objects once there are as many as git's own `gc.auto`
    /// would pack (estimated as git does, from one of the 256 object directories). Our
    /// commits and small fetches leave objects loose, and the mirror has automatic
    /// collection off (it must not run behind another process's back): without this a
    /// worker's mirror would gather loose objects for ever, and every history read would
    /// open more files. Runs under the mirror's lock: `repack -d` without `-a` adds one
    /// pack of the reachable loose objects (readers find them there), and `prune` drops
    /// unreachable ones (bumps that never landed) only when two weeks old, as `gc` would:
    /// a chain another process is building now is never touched. A failure only costs
    /// speed.
    async fn pack_loose_objects(&self) {
        let sample = self.dir.join("objects").join("17");
        let loose = std::fs::read_dir(&sample).map_or(0, |entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().len() == 38)
                .count()
        });
        if loose * 256 <= LOOSE_OBJECTS_TO_PACK {
            return;
        }
        let step = "packing the mirror's loose objects";
        let tidy = [
            &["repack", "-d", "-q"][..],
            &["prune", "--expire=2.weeks.ago"][..],
        ];
        for args in tidy {
            if let Err(e) = self.git.run(&self.dir, args, step).await {
                tracing::warn!(error = %e, "cannot pack the mirror's loose objects; reads stay slower");
                return;
            }
        }
    }

    /// `git fetch` of `refspecs` from the remote into the mirror (with `options`, such as a
    /// depth), quietly and without tags or FETCH_HEAD. Without git's automatic
    /// maintenance after it: [`Self::pack_loose_objects`] keeps the mirror packed, and the
    /// `maintenance run --auto` git would start costs a process per fetch for nothing.
    pub(super) async fn fetch_refs(
        &self,
        refspecs: &[&str],
        options: &[&str],
        step: &str,
    ) -> Result<(), GitError> {
        let mut args = vec![
            "-c",
            "maintenance.auto=false",
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
        ];
        args.extend(options);
        args.extend(["--", &self.config.url]);
        args.extend(refspecs);
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
        self.fetch_refs(&[&refspec], &[&option], &step).await?;
        Ok(())
    }
}

/// Loose objects that make a mirror worth packing: git's own `gc.auto` default.
const LOOSE_OBJECTS_TO_PACK: usize = 6_700;

/// A directory name for the mirror of a URL's branch: readable, and unique by a hash of
/// both. Each branch has its own mirror (and lock): a shallow fetch of one branch must not
/// cut the history another is read from.
pub(super) fn mirror_name(url: &str, branch: &str) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(format!("{}\n{branch}", redact_urls(url)).as_bytes());
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
pub(super) struct Lock {
    _file: std::fs::File,
}

pub(super) async fn lock(dir: &Path, timeout: Duration) -> Result<Lock, GitError> {
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
