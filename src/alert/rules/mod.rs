//! Detection: one alert per file, each a function of (the pass's report, what earlier
//! passes left in [`Memory`], the settings, now) returning the alerts of its kind that fire.

mod failed;
mod held;
mod registry_unavailable;
mod stalled;

use jiff::Timestamp;

use super::Alert;
use super::state::Memory;
use crate::engine::PassReport;
use crate::rules::Settings;

/// What a rule sees.
pub struct Context<'a> {
    /// This pass.
    pub report: &'a PassReport,
    /// What earlier passes left (consecutive registry failures, first-seen times).
    pub memory: &'a Memory,
    /// The settings (`alerts.holdAlertAfter`).
    pub settings: &'a Settings,
    /// The time.
    pub now: Timestamp,
}

/// A detection rule.
type Rule = fn(&Context<'_>) -> Vec<Alert>;

/// Every rule, in one list.
const RULES: [Rule; 4] = [
    failed::check,
    stalled::check,
    registry_unavailable::check,
    held::check,
];

/// Every alert that fires after this pass.
pub fn firing(cx: &Context<'_>) -> Vec<Alert> {
    RULES.iter().flat_map(|rule| rule(cx)).collect()
}
