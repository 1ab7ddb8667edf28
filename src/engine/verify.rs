//! Deploy verification in a pass: for each environment with `verify:`, what its controller
//! reports, held against the commit that set the environment's value (the controller must
//! run that commit, or a later one, synced and healthy). What this means for soak is
//! [`Deployment::apply`]'s: a value runs from its rollout, not from its commit.
//!
//! It reads clusters and the mirror's ancestry; it writes nothing, and Git stays the only
//! memory: the rollout is read again on every pass.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use gix::ObjectId;
use jiff::Timestamp;

use super::observe::{EnvKey, Observed};
use crate::deploy::RolloutState;
use crate::deploy::cluster::{Clusters, Place};
use crate::gitops::Repo;
use crate::policy::Timeline;
use crate::rules::{Destination, Rules};

/// How an environment's rollout stands, for its report and alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutReport {
    /// Whether its value runs.
    pub deployment: Deployment,
    /// When its value's commit landed (a rollout is awaited from then).
    pub landed: Option<Timestamp>,
    /// How long a rollout may take before the environment is reported stalled.
    pub deploy_timeout: jiff::SignedDuration,
    /// What deploys it, in words (`Argo CD Application argocd/app-dev`).
    pub controller: String,
}

impl RolloutReport {
    /// Since when a rollout has been awaited past `deployTimeout`, if it has: the value is
    /// not deployed (or its controller cannot be read) that long after its commit landed.
    pub fn overdue(&self, now: Timestamp) -> Option<Timestamp> {
        if !matches!(
            self.deployment,
            Deployment::Deploying { .. } | Deployment::Unknown { .. }
        ) {
            return None;
        }
        let landed = self.landed?;
        let due = landed.checked_add(self.deploy_timeout).ok()?;
        (due <= now).then_some(landed)
    }
}

/// `controller` in words, for states and alerts.
pub fn controller_name(controller: &crate::rules::Controller) -> String {
    match controller {
        crate::rules::Controller::Argocd {
            application,
            namespace,
        } => format!("Argo CD Application {namespace}/{application}"),
        crate::rules::Controller::Flux {
            kustomization,
            namespace,
            helm_release,
        } => match helm_release {
            Some(release) => format!(
                "Flux Kustomization {namespace}/{kustomization} and HelmRelease {namespace}/{release}"
            ),
            None => format!("Flux Kustomization {namespace}/{kustomization}"),
        },
    }
}

/// Whether an environment's current value runs, as its controller reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deployment {
    /// It runs, synced and healthy, since `since` (never before its commit landed).
    Deployed {
        /// Since when.
        since: Timestamp,
    },
    /// Not yet: the controller runs an older commit, or is still applying this one.
    Deploying {
        /// The controller's own words.
        message: String,
    },
    /// It runs, and is unhealthy.
    Unhealthy {
        /// The controller's own words.
        message: String,
    },
    /// The controller cannot be read, or says nothing usable.
    Unknown {
        /// Why.
        message: String,
    },
}

impl Deployment {
    /// `timeline` as it ran: its last value from its rollout on; a value not (or not
    /// healthily) rolled out has not started running, and what ran before still runs —
    /// unless the last change is a person's rollback: then what it rolled back from stops
    /// flowing at once (a person wins when in doubt), whatever the controller says.
    pub fn apply(&self, timeline: &mut Timeline) {
        match self {
            Self::Deployed { since } => {
                if let Some(last) = timeline.changes.last_mut() {
                    last.since = last.since.max(*since);
                }
            }
            Self::Deploying { .. } | Self::Unhealthy { .. } | Self::Unknown { .. } => {
                if timeline.changes.last().is_some_and(|c| !c.rollback) {
                    timeline.changes.pop();
                }
            }
        }
    }
}

/// Read the rollout of every environment of `rules` with `verify:` into `observed`.
pub async fn observe_deployments(
    rules: &Rules,
    clusters: &Clusters,
    repos: &BTreeMap<Destination, Repo>,
    observed: &mut Observed,
) {
    let verified: Vec<(EnvKey, Place, &Destination)> = rules
        .promotions
        .iter()
        .flat_map(|p| {
            p.environments.iter().filter_map(move |env| {
                let v = env.verify.as_ref()?;
                let place = (v.cluster.clone(), v.controller.clone());
                Some((EnvKey::of(p, env), place, &env.destination))
            })
        })
        .collect();
    if verified.is_empty() {
        return;
    }
    let places: Vec<Place> = verified.iter().map(|(_, place, _)| place.clone()).collect();
    let rollouts = clusters.rollouts(&places).await;
    // Many environments share a controller revision (every Application of a repository on
    // its tip): each revision's ancestry is walked once.
    let mut ancestries: Ancestries = HashMap::new();
    let mut deployments = HashMap::with_capacity(verified.len());
    for (key, place, destination) in verified {
        let set_by = observed
            .environments
            .get(&key)
            .and_then(|s| s.timeline.changes.last())
            .map(|c| (c.commit.clone(), c.since));
        let deployment = match (rollouts.get(&place), set_by) {
            (None, _) => Deployment::Unknown {
                message: "not read".into(),
            },
            (Some(Err(e)), _) => Deployment::Unknown {
                message: e.to_string(),
            },
            (Some(Ok(_)), None | Some((None, _))) => Deployment::Unknown {
                message: "the commit that set its value is not known".into(),
            },
            (Some(Ok(rollout)), Some((Some(commit), landed))) => {
                let runs = match (
                    repos.get(destination),
                    ObjectId::from_hex(commit.as_bytes()),
                ) {
                    (Some(repo), Ok(commit)) => {
                        runs_commit(
                            repo,
                            destination,
                            &rollout.revisions,
                            commit,
                            &mut ancestries,
                        )
                        .await
                    }
                    _ => false,
                };
                match (&rollout.state, runs) {
                    (_, false) => Deployment::Deploying {
                        message: format!(
                            "the controller runs {}, not yet {}",
                            shown(&rollout.revisions),
                            short(&commit)
                        ),
                    },
                    (RolloutState::Healthy { since }, true) => Deployment::Deployed {
                        since: since.map_or(landed, |s| s.max(landed)),
                    },
                    (RolloutState::Pending { message }, true) => Deployment::Deploying {
                        message: message.clone(),
                    },
                    (RolloutState::Degraded { message }, true) => Deployment::Unhealthy {
                        message: message.clone(),
                    },
                    (RolloutState::Unknown { message }, true) => Deployment::Unknown {
                        message: message.clone(),
                    },
                }
            }
        };
        deployments.insert(key, deployment);
    }
    observed.deployments = deployments;
}

/// Each (destination, revision)'s ancestry, walked once a pass.
type Ancestries = HashMap<(Destination, ObjectId), Arc<HashSet<ObjectId>>>;

/// Whether one of `revisions` is `commit` or descends from it in `repo`.
async fn runs_commit(
    repo: &Repo,
    destination: &Destination,
    revisions: &[String],
    commit: ObjectId,
    ancestries: &mut Ancestries,
) -> bool {
    for revision in revisions {
        let Ok(id) = ObjectId::from_hex(revision.as_bytes()) else {
            continue;
        };
        if id == commit {
            return true;
        }
        let key = (destination.clone(), id);
        let ancestry = match ancestries.get(&key) {
            Some(known) => Arc::clone(known),
            None => {
                let walked = Arc::new(repo.ancestry(id).await);
                ancestries.insert(key, Arc::clone(&walked));
                walked
            }
        };
        if ancestry.contains(&commit) {
            return true;
        }
    }
    false
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn shown(revisions: &[String]) -> String {
    if revisions.is_empty() {
        return "no revision yet".into();
    }
    revisions
        .iter()
        .map(|r| short(r))
        .collect::<Vec<_>>()
        .join(" and ")
}
