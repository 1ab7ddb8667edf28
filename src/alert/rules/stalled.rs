//! `PromotionStalled`: an eligible, newer tag has waited longer than `stallAfter` (counted
//! from when it became eligible: seen, soaked, unfrozen) without the environment reaching
//! it — pushed or still in an open pull request (its URL in the alert). Held and frozen
//! environments do not stall, nor one whose pull request a person closed. Resolves when it
//! runs that tag or newer.

use super::Context;
use crate::alert::{Alert, AlertName};
use crate::engine::Applied;

/// The environments whose eligible tag has waited too long.
pub fn check(cx: &Context<'_>) -> Vec<Alert> {
    let mut out = Vec::new();
    for e in &cx.report.environments {
        let Some(since) = e.stalled_since(cx.now) else {
            continue;
        };
        let d = &e.decision;
        out.push(Alert {
            name: AlertName::PromotionStalled,
            promotion: d.key.promotion.clone(),
            repository: d.destination.repository.clone(),
            environment: d.key.environment.clone(),
            image: d.image.to_string(),
            since,
            from: d.current.clone(),
            to: d.promotes_to().map(|t| t.to_string()),
            class: None,
            error: match &e.applied {
                Applied::Proposed { number, url } => {
                    Some(format!("pull request #{number} is still open: {url}"))
                }
                _ => e.problem(),
            },
        });
    }
    out
}
