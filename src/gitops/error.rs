//! Errors of the GitOps repository, classified as the `PromotionFailed` alert reports them,
//! each saying what to check.

use std::fmt;

/// The class of a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum GitErrorKind {
    /// Credentials missing, wrong or not allowed to push.
    Auth,
    /// The remote refused the push (a hook, branch protection).
    Rejected,
    /// Others kept pushing; our bumps could not land after several attempts.
    Conflict,
    /// The remote could not be reached, or broke off.
    Network,
    /// No such repository or branch.
    NotFound,
    /// A target path that cannot be written (symlink, submodule, directory, outside).
    Target,
    /// The local mirror or the machine (disk, git missing).
    Local,
}

impl GitErrorKind {
    /// The label used in alerts and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Rejected => "rejected",
            Self::Conflict => "conflict",
            Self::Network => "network",
            Self::NotFound => "not-found",
            Self::Target => "target",
            Self::Local => "local",
        }
    }

    fn hint(self) -> &'static str {
        match self {
            Self::Auth => {
                "check git.auth in the Settings (the token or key file, and its write access)"
            }
            Self::Rejected => {
                "the remote's rules refused the commit; see its message, or use write: pull-request"
            }
            Self::Conflict => "the branch kept moving; the bumps are retried on the next pass",
            Self::Network => "check that git.url is reachable from here; retried on the next pass",
            Self::NotFound => "check git.url and git.branch",
            Self::Target => {
                "check the target's file and path in the rules; `tagpromoter check --repo` checks every target"
            }
            Self::Local => "check the cache directory (--cache-dir) and that git is installed",
        }
    }
}

/// A failed repository operation. Never holds a credential or a URL's user info.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub struct GitError {
    /// The class.
    pub kind: GitErrorKind,
    /// What was being done.
    pub step: String,
    /// What went wrong.
    pub detail: String,
}

impl GitError {
    /// A new error.
    pub fn new(kind: GitErrorKind, step: &str, detail: impl Into<String>) -> Self {
        Self {
            kind,
            step: step.to_string(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for GitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} ({}); {}",
            self.step,
            self.detail,
            self.kind.as_str(),
            self.kind.hint()
        )
    }
}
