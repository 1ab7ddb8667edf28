//! The GitOps repository: a local bare mirror, fetched each pass; files read at the branch's
//! tip without a checkout; bump commits written without a worktree; one push per pass, with
//! rebase-and-retry on conflicts and a check that the remote really holds our commit.

pub mod error;
pub mod git;
pub mod history;
pub mod message;
pub mod store;

pub use error::{GitError, GitErrorKind};
pub mod repo;

pub use repo::{Bump, Edit, Repo, RepoConfig, Report};
