//! `PromotionHeld` (info): a hold has lasted longer than `alerts.holdAlertAfter` while a
//! newer eligible tag waits — a break-glass exception is becoming permanent. Resolves when
//! the hold is released or expires.

use super::Context;
use crate::alert::{Alert, AlertName};
use crate::policy::{Blocked, Decision};

/// The environments held too long.
pub fn check(cx: &Context<'_>) -> Vec<Alert> {
    let mut out = Vec::new();
    for e in &cx.report.environments {
        let d = &e.decision;
        let Ok(decided) = &d.outcome else { continue };
        let Decision::Blocked {
            to: Some(to),
            reason: Blocked::Held(hold),
            ..
        } = &decided.decision
        else {
            continue;
        };
        let Ok(due) = hold.since.checked_add(cx.settings.alerts.hold_alert_after) else {
            continue;
        };
        if due > cx.now {
            continue;
        }
        let mut why = format!("held by {}", hold.by);
        if let Some(r) = &hold.reason {
            why.push_str(&format!(": {r}"));
        }
        out.push(Alert {
            to: Some(to.to_string()),
            error: Some(why),
            ..Alert::about(AlertName::PromotionHeld, d, hold.since)
        });
    }
    out
}
