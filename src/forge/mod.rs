//! Forges that pull requests are opened on, for environments with `write: pull-request`:
//! one small typed client per forge behind [`Forge`] (GitHub and GitHub Enterprise, GitLab,
//! Gitea and Forgejo); and when a pull request landed a commit, for soak times.
//! The token is read from its file at each use and never logged; errors are classified
//! like push failures so that they alert the same way.
//!
//! It must not decide or touch Git: the engine pushes the branch, then asks the forge.

mod api;
mod gitea;
mod github;
mod gitlab;

use std::future::Future;
use std::pin::Pin;

pub use gitea::Gitea;
pub use github::GitHub;
pub use gitlab::GitLab;

use jiff::Timestamp;

use crate::rules::{Forge as ForgeSettings, ForgeKind};

/// A pull request's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrState {
    /// Open.
    Open,
    /// Merged.
    Merged,
    /// Closed without merging.
    Closed,
}

impl PrState {
    /// Its name: `open`, `merged`, `closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Merged => "merged",
            Self::Closed => "closed",
        }
    }
}

/// A pull (or merge) request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// Its number on the forge.
    pub number: u64,
    /// Where people see it.
    pub url: String,
    /// Open, merged or closed.
    pub state: PrState,
    /// Its title.
    pub title: String,
    /// Its body.
    pub body: String,
}

/// The class of a forge failure, named as push failures are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgeErrorKind {
    /// The token is missing, wrong, or may not do this.
    Auth,
    /// No such project (or the API URL is wrong).
    NotFound,
    /// The forge refused the request as asked (validation).
    Rejected,
    /// The forge could not be reached, or failed.
    Network,
    /// The answer is not what the API promises (too large, not JSON, not the fields).
    Invalid,
}

impl ForgeErrorKind {
    /// The label in alerts and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::NotFound => "not-found",
            Self::Rejected => "rejected",
            Self::Network => "network",
            Self::Invalid => "invalid",
        }
    }

    /// What to check.
    pub fn hint(self) -> &'static str {
        match self {
            Self::Auth => "check git.forge.tokenFile and that the token may open pull requests",
            Self::NotFound => "check git.forge.apiUrl and git.forge.project",
            Self::Rejected => "the forge refused the request; see its message",
            Self::Network => "the forge could not be reached; retried on the next pass",
            Self::Invalid => {
                "the forge answered what its API does not promise; check git.forge.apiUrl and kind"
            }
        }
    }
}

/// A failed forge request. Never holds the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{forge}: {step}: {detail} ({}); {}", kind.as_str(), kind.hint())]
pub struct ForgeError {
    /// The class.
    pub kind: ForgeErrorKind,
    /// Which forge (`github (api.github.com)`).
    pub forge: String,
    /// What was being done.
    pub step: String,
    /// What went wrong.
    pub detail: String,
}

/// A boxed future, for the trait's methods.
pub type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T, ForgeError>> + Send + 'a>>;

/// A forge's pull requests, as tagpromoter uses them.
pub trait Forge: Send + Sync {
    /// The newest pull request from `branch` (any state), if any.
    fn find<'a>(&'a self, branch: &'a str) -> Call<'a, Option<PullRequest>>;
    /// Open one from `branch` into `base`.
    fn open<'a>(
        &'a self,
        branch: &'a str,
        base: &'a str,
        title: &'a str,
        body: &'a str,
    ) -> Call<'a, PullRequest>;
    /// Change an open one's title and body, and close it (unmerged) when `close`.
    fn update<'a>(
        &'a self,
        number: u64,
        title: &'a str,
        body: &'a str,
        close: bool,
    ) -> Call<'a, PullRequest>;
    /// When a pull request merged `commit` into `base`, if one did: the time it landed
    /// there. (A fast-forward merge keeps the commit's own time, which may be days older.)
    fn merged_at<'a>(&'a self, commit: &'a str, base: &'a str) -> Call<'a, Option<Timestamp>>;
}

/// The earliest of the merge times `merges` (`(base, merged_at)`) into `base`: when the
/// commit first landed there.
fn first_merge<'a>(
    merges: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    base: &str,
) -> Option<Timestamp> {
    merges
        .into_iter()
        .filter(|(b, _)| *b == base)
        .filter_map(|(_, at)| at?.parse::<Timestamp>().ok())
        .min()
}

/// `(owner, name)` of a project that must be `owner/name`.
fn owner_and_name(project: &str) -> Result<(&str, &str), ForgeSetupError> {
    project
        .split_once('/')
        .ok_or_else(|| ForgeSetupError(format!("project {project:?} is not owner/name")))
}

/// Why a forge client cannot be made from the settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("git.forge: {0}")]
pub struct ForgeSetupError(pub String);

/// The client the settings name; `project` defaults to the path of `git_url` without `.git`.
pub fn from_settings(
    settings: &ForgeSettings,
    git_url: &str,
) -> Result<Box<dyn Forge>, ForgeSetupError> {
    let project = match &settings.project {
        Some(p) => p.clone(),
        None => project_of(git_url).ok_or_else(|| {
            ForgeSetupError(
                "cannot tell the project from git.url; set git.forge.project (owner/name)".into(),
            )
        })?,
    };
    match settings.kind {
        ForgeKind::Github => Ok(Box::new(GitHub::new(
            &settings.api_url,
            &project,
            settings.token_file.clone(),
        )?)),
        ForgeKind::Gitlab => Ok(Box::new(GitLab::new(
            &settings.api_url,
            &project,
            settings.token_file.clone(),
        )?)),
        ForgeKind::Gitea => Ok(Box::new(Gitea::new(
            &settings.api_url,
            &project,
            settings.token_file.clone(),
        )?)),
    }
}

/// `owner/name` from `https://host/owner/name.git` or `git@host:owner/name.git`.
pub fn project_of(url: &str) -> Option<String> {
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.split_once('/')?.1,
        None => url.split_once(':')?.1,
    };
    let path = path.trim_matches('/').trim_end_matches(".git");
    (!path.is_empty() && path.contains('/')).then(|| path.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projects_come_from_git_urls() {
        assert_eq!(
            project_of("https://github.com/acme/gitops-deploys.git").as_deref(),
            Some("acme/gitops-deploys")
        );
        assert_eq!(
            project_of("git@github.com:acme/deploys.git").as_deref(),
            Some("acme/deploys")
        );
        assert_eq!(
            project_of("https://gitlab.example.com/group/sub/deploys").as_deref(),
            Some("group/sub/deploys")
        );
        assert_eq!(project_of("https://host/"), None);
    }
}
