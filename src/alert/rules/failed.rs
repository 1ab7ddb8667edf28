//! `PromotionFailed`: writing a bump failed (the remote refused it, credentials, conflict,
//! network), or deciding did (its target cannot be read, its history cannot be read back
//! far enough, a fact the decision needs is unknown): nothing stops in silence. A tag list
//! that cannot be read is `RegistryUnavailable`'s, after three passes. Resolves when the
//! environment no longer fails.

use super::Context;
use crate::alert::{Alert, AlertName};
use crate::engine::{Problem, State};

/// The environments whose write failed this pass.
pub fn check(cx: &Context<'_>) -> Vec<Alert> {
    let mut out = Vec::new();
    if let Some(e) = &cx.report.error {
        let alert = Alert {
            name: AlertName::PromotionFailed,
            promotion: String::new(),
            repository: String::new(),
            environment: String::new(),
            image: String::new(),
            since: cx.now,
            from: None,
            to: None,
            class: Some(e.kind.as_str().into()),
            error: Some(e.to_string()),
        };
        out.push(cx.memory.keep_since(alert));
    }
    for e in &cx.report.environments {
        let d = &e.decision;
        // Every failing state but an unlisted tag list (RegistryUnavailable's).
        let State::Failing { class, error } = e.state(cx.now) else {
            continue;
        };
        if matches!(d.outcome, Err(Problem::Registry(_))) {
            continue;
        }
        let alert = Alert {
            to: d.promotes_to().map(|t| t.to_string()),
            class: Some(class),
            error: Some(error),
            ..Alert::about(AlertName::PromotionFailed, d, cx.now)
        };
        out.push(cx.memory.keep_since(alert));
    }
    out
}
