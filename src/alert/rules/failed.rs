//! `PromotionFailed`: writing a bump failed (the remote refused it, credentials, conflict,
//! network) or its target cannot be edited. Resolves when the environment no longer fails.

use super::Context;
use crate::alert::{Alert, AlertName};
use crate::engine::{Applied, Problem};

/// The environments whose write failed this pass.
pub fn check(cx: &Context<'_>) -> Vec<Alert> {
    let mut out = Vec::new();
    if let Some(e) = &cx.report.error {
        let alert = Alert {
            name: AlertName::PromotionFailed,
            promotion: String::new(),
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
        let (class, error) = match (&d.outcome, &e.applied) {
            (Err(Problem::Target(g)), _) => (g.kind.as_str(), g.to_string()),
            (_, Applied::Failed(g)) => (g.class(), g.to_string()),
            _ => continue,
        };
        let alert = Alert {
            name: AlertName::PromotionFailed,
            promotion: d.key.promotion.clone(),
            environment: d.key.environment.clone(),
            image: d.image.to_string(),
            since: cx.now,
            from: d.current.clone(),
            to: d.promotes_to().map(|t| t.to_string()),
            class: Some(class.into()),
            error: Some(error),
        };
        out.push(cx.memory.keep_since(alert));
    }
    out
}
