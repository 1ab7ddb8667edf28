//! What Argo CD and Flux report about a rollout, read from their objects' `status`: which
//! revisions the controller runs, and whether it runs them synced and healthy (since when),
//! is still rolling them out, failed, or cannot be told.
//!
//! [`argocd::rollout`] and [`flux::rollout`] are pure: they read the JSON objects handed to
//! them, which [`cluster::Clusters`] lists from the clusters at each pass; a worker's
//! [`watch::Watches`] ring for a pass when one changes between passes. None of it decides
//! what a rollout means for soak or eligibility (the engine's), nor whether a revision
//! descends from a bump (the GitOps mirror's).

pub mod argocd;
pub mod cluster;
pub mod flux;
pub mod kubeconfig;
pub mod watch;

use jiff::Timestamp;

/// What a controller reports about the rollout of an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    /// The Git revisions (commit ids) it last applied: one per source (multi-source Argo CD
    /// applications have several; a revision that is not a commit, such as a Helm chart's
    /// version, is listed as written).
    pub revisions: Vec<String>,
    /// How that rollout stands.
    pub state: RolloutState,
    /// The rollouts the controller remembers, oldest first (Argo CD's `status.history`,
    /// its last ten by default; Flux keeps none).
    pub history: Vec<Deployed>,
    /// The images the deployed objects run, as the controller lists them (Argo CD's
    /// `status.summary.images`); empty when it does not say (Flux).
    pub images: Vec<String>,
}

/// A rollout a controller remembers: what it deployed, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    /// The revisions, as in [`Rollout::revisions`].
    pub revisions: Vec<String>,
    /// When it finished deploying them.
    pub at: Timestamp,
}

/// How a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutState {
    /// Applied, in sync and healthy, since `since` (when the controller finished applying
    /// it, or turned ready with it); `None` when it does not say.
    Healthy {
        /// When it was reported so.
        since: Option<Timestamp>,
    },
    /// Not deployed yet: still applying or waiting, or the controller could not apply it
    /// (a failed sync, a build error). It becomes a stall once `deployTimeout` passes.
    Pending {
        /// The controller's own words.
        message: String,
    },
    /// What it deployed is unhealthy (Argo CD's `Degraded`, Flux's failed health checks
    /// or Helm release).
    Degraded {
        /// The controller's own words.
        message: String,
    },
    /// The object reports nothing usable yet (no status, an unknown health).
    Unknown {
        /// Why not.
        message: String,
    },
}

impl Rollout {
    /// A rollout whose object says nothing usable.
    fn unknown(message: impl Into<String>) -> Self {
        Self {
            revisions: Vec::new(),
            state: RolloutState::Unknown {
                message: message.into(),
            },
            history: Vec::new(),
            images: Vec::new(),
        }
    }
}

/// The text at `path` in `object`, if it is a string.
fn text<'v>(object: &'v serde_json::Value, path: &[&str]) -> Option<&'v str> {
    path.iter()
        .try_fold(object, |v, key| v.get(key))
        .and_then(|v| v.as_str())
}

/// The time at `path` in `object` (RFC 3339), if there is a valid one.
fn time(object: &serde_json::Value, path: &[&str]) -> Option<Timestamp> {
    text(object, path).and_then(|t| t.parse().ok())
}

/// `what` the controller reports, followed by its own `message` when it gave one.
fn said(what: &str, message: Option<&str>) -> String {
    match message.filter(|m| !m.is_empty()) {
        Some(m) => format!("{what}: {m}"),
        None => what.to_string(),
    }
}
