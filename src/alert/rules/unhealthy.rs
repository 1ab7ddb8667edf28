//! `DeploymentUnhealthy` (critical): the controller that deploys an environment (`verify:`)
//! runs its value and reports the rollout unhealthy (Argo CD's `Degraded`, a Flux health
//! check or Helm release failing), naming the controller's object and the tag; and
//! `DeploymentMismatch` (critical): it runs the environment's commit, synced and healthy,
//! and yet not the image the target renders (Argo CD's `status.summary.images`), naming
//! the file, the entry and what runs. Either way the tag does not flow downstream
//! meanwhile. Each resolves when the rollout runs the value healthily again.

use super::Context;
use crate::alert::{Alert, AlertName};
use crate::engine::verify::Deployment;

/// The environments whose rollout is unhealthy, or runs another image than its target's.
pub fn check(cx: &Context<'_>) -> Vec<Alert> {
    let mut out = Vec::new();
    for e in &cx.report.environments {
        let d = &e.decision;
        let Some(rollout) = &d.rollout else {
            continue;
        };
        let (name, class, error) = match &rollout.deployment {
            Deployment::Unhealthy { message } => (
                AlertName::DeploymentUnhealthy,
                "unhealthy",
                format!("{} reports {message}", rollout.controller),
            ),
            Deployment::Mismatch { message } => (
                AlertName::DeploymentMismatch,
                "mismatch",
                format!("{} {message}", rollout.controller),
            ),
            _ => continue,
        };
        // It runs the committed value: unhealthy, or not as the file renders it.
        out.push(Alert {
            from: None,
            to: d.current.clone(),
            class: Some(class.into()),
            error: Some(error),
            ..Alert::about(name, d, rollout.landed.unwrap_or(cx.now))
        });
    }
    out
}
