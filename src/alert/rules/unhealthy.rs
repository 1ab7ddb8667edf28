//! `DeploymentUnhealthy` (critical): the controller that deploys an environment (`verify:`)
//! runs its value and reports the rollout unhealthy (Argo CD's `Degraded`, a Flux health
//! check or Helm release failing), naming the controller's object and the tag. The tag
//! does not flow downstream meanwhile. Resolves when the rollout is healthy again.

use super::Context;
use crate::alert::{Alert, AlertName};
use crate::engine::verify::Deployment;

/// The environments whose rollout is unhealthy.
pub fn check(cx: &Context<'_>) -> Vec<Alert> {
    let mut out = Vec::new();
    for e in &cx.report.environments {
        let d = &e.decision;
        let Some(rollout) = &d.rollout else {
            continue;
        };
        let Deployment::Unhealthy { message } = &rollout.deployment else {
            continue;
        };
        // It runs the committed value, unhealthy.
        out.push(Alert {
            from: None,
            to: d.current.clone(),
            class: Some("unhealthy".into()),
            error: Some(format!("{} reports {message}", rollout.controller)),
            ..Alert::about(
                AlertName::DeploymentUnhealthy,
                d,
                rollout.landed.unwrap_or(cx.now),
            )
        });
    }
    out
}
