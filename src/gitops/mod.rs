//! The GitOps repository: a local bare mirror, fetched each pass; files read at the branch's
//! tip without a checkout; bump commits written without a worktree; one push per branch and
//! pass, with rebase-and-retry on conflicts, rejections narrowed to the commits refused, and
//! a check that the remote really holds our commits; history read once per pass, through
//! [`Repo::snapshot`], as far back as the caller needs.
//!
//! It must not decide anything: which tag goes where is the engine's business.

pub mod error;
pub mod git;
mod grow;
pub mod history;
mod kept;
pub mod message;
pub mod sightings;
pub mod store;

pub use error::{GitError, GitErrorKind};
pub mod repo;
pub mod snapshot;

pub use repo::{
    Bump, Chain, FileChange, FileEdit, Outcome, Prepared, Pushed, Repo, RepoConfig, Report,
};
pub use snapshot::{Entry, Snapshot, TargetHistory, TargetQuery, Value};
