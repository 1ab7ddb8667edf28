//! `PromotionStalled`: an eligible, newer tag has waited longer than `stallAfter` (counted
//! from when it became eligible: seen, soaked, unfrozen) without the environment reaching
//! it — pushed or still in an open pull request (its URL in the alert). Held and frozen
//! environments do not stall, nor one whose pull request a person closed. Resolves when it
//! runs that tag or newer.
//!
//! With `verify:`, a value committed longer than `deployTimeout` ago that its controller
//! does not run (or that cannot be told) stalls too: class `not deployed`, the controller's
//! own words as the error. Resolves when the rollout is healthy.

use super::Context;
use crate::alert::{Alert, AlertName};
use crate::engine::Applied;
use crate::engine::verify::Deployment;

/// The environments whose eligible tag has waited too long.
pub fn check(cx: &Context<'_>) -> Vec<Alert> {
    let mut out = Vec::new();
    for e in &cx.report.environments {
        let d = &e.decision;
        if let Some(rollout) = &d.rollout
            && let Some(since) = rollout.overdue(cx.now)
        {
            let words = match &rollout.deployment {
                Deployment::Deploying { message } | Deployment::Unknown { message } => {
                    message.as_str()
                }
                _ => "",
            };
            // It runs what was there before: the committed value is what it awaits.
            out.push(Alert {
                from: None,
                to: d.current.clone(),
                class: Some("not deployed".into()),
                error: Some(format!("{}: {words}", rollout.controller)),
                ..Alert::about(AlertName::PromotionStalled, d, since)
            });
            continue;
        }
        let Some(since) = e.stalled_since(cx.now) else {
            continue;
        };
        out.push(Alert {
            to: d.promotes_to().map(|t| t.to_string()),
            error: match &e.applied {
                Applied::Proposed { number, url } => {
                    Some(format!("pull request #{number} is still open: {url}"))
                }
                _ => e.problem(),
            },
            ..Alert::about(AlertName::PromotionStalled, d, since)
        });
    }
    out
}
