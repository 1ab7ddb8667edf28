//! What people and programs read of a pass, for the commands and the server alike: each
//! environment as a view (JSON for `--output json`, `/status` and the board), text for
//! `status`, `plan` and `once` ([`text`]), and unified diffs for `plan` ([`diff`]). Pure: a
//! report in, text out; nothing here reads or writes anything.

pub mod diff;
mod text;

pub use text::{once_text, plan_text, status_table};

use jiff::Timestamp;
use serde::Serialize;

use crate::engine::{Applied, EnvReport, PassReport, State};
use crate::policy::{Blocked, Decision};

/// One environment, as JSON shows it.
#[derive(Debug, Serialize)]
pub struct EnvView {
    /// The promotion.
    pub promotion: String,
    /// The environment.
    pub environment: String,
    /// The repository it writes to, by name (`default`: `git`).
    pub repository: String,
    /// The branch it writes to.
    pub branch: String,
    /// The image.
    pub image: String,
    /// What it runs.
    pub current: Option<String>,
    /// The best eligible tag.
    pub best: Option<String>,
    /// `promote`, `up-to-date`, `blocked` or `error`.
    pub decision: &'static str,
    /// Why it is blocked, when it is.
    pub blocked: Option<String>,
    /// The state's name (`up-to-date`, `soaking`, `frozen`, `held`, `pending`, `stalled`,
    /// `failing`).
    pub state: &'static str,
    /// The state in words.
    pub state_text: String,
    /// Since when the state holds (stalled, held).
    pub since: Option<String>,
    /// Until when it holds (soaking, frozen, held).
    pub until: Option<String>,
    /// The hold, when there is one in force.
    pub hold: Option<HoldView>,
    /// Better tags and what each waits for, best first.
    pub waiting: Vec<TagWhy>,
    /// Tags that do not pass the policy, and why.
    pub rejected: Vec<TagWhy>,
    /// What people should know about what it runs (re-pushed, gone from the registry).
    pub warnings: Vec<String>,
    /// What writing did: `landed`, `already-in-place`, `superseded`, `failed`, `skipped`.
    pub result: Option<&'static str>,
    /// The commit that landed.
    pub commit: Option<String>,
    /// The pull request proposing the bump, for `write: pull-request`.
    pub pull_request: Option<PullRequestView>,
    /// What failed.
    pub error: Option<ErrorView>,
}

/// A pull request.
#[derive(Debug, Serialize)]
pub struct PullRequestView {
    /// Its number.
    pub number: u64,
    /// Where it is.
    pub url: String,
    /// `open` or `closed` (unmerged).
    pub state: &'static str,
}

/// A hold.
#[derive(Debug, Serialize)]
pub struct HoldView {
    /// Who set it.
    pub by: String,
    /// Why.
    pub reason: Option<String>,
    /// Since when.
    pub since: String,
    /// Until when (`None`: until released).
    pub until: Option<String>,
}

/// A tag and a reason.
#[derive(Debug, Serialize)]
pub struct TagWhy {
    /// The tag.
    pub tag: String,
    /// Why it is not chosen.
    pub why: String,
}

/// A failure.
#[derive(Debug, Serialize)]
pub struct ErrorView {
    /// Its class.
    pub class: String,
    /// Its message.
    pub message: String,
}

/// The JSON view of one environment at `now`.
pub fn view(e: &EnvReport, now: Timestamp) -> EnvView {
    let d = &e.decision;
    let state = e.state(now);
    let (since, until) = match &state {
        State::Soaking { until } | State::Frozen { until } => (None, Some(until.to_string())),
        State::Stalled { since } => (Some(since.to_string()), None),
        State::Held(h) => (Some(h.since.to_string()), h.until.map(|u| u.to_string())),
        _ => (None, None),
    };
    let (decision, best, blocked, waiting, rejected) = match &d.outcome {
        Err(_) => ("error", None, None, Vec::new(), Vec::new()),
        Ok(decided) => {
            let waiting = decided
                .decision
                .waiting()
                .iter()
                .map(|w| TagWhy {
                    tag: w.tag.to_string(),
                    why: w.block.to_string(),
                })
                .collect();
            let rejected = decided
                .rejected
                .iter()
                .map(|(t, r)| TagWhy {
                    tag: t.to_string(),
                    why: r.to_string(),
                })
                .collect();
            match &decided.decision {
                Decision::UpToDate { current, .. } => (
                    "up-to-date",
                    Some(current.to_string()),
                    None,
                    waiting,
                    rejected,
                ),
                Decision::Promote { to, .. } => {
                    ("promote", Some(to.to_string()), None, waiting, rejected)
                }
                Decision::Blocked { to, reason, .. } => (
                    "blocked",
                    // What runs is above the best the policy accepts: the best there is
                    // is what runs (BEST is never older than CURRENT).
                    match reason {
                        crate::policy::Blocked::Downgrade { current } => Some(current.to_string()),
                        _ => to.as_ref().map(|t| t.to_string()),
                    },
                    Some(reason.to_string()),
                    waiting,
                    rejected,
                ),
            }
        }
    };
    let hold = match &d.outcome {
        Ok(decided) => match &decided.decision {
            Decision::Blocked {
                reason: Blocked::Held(h),
                ..
            } => Some(h),
            _ => None,
        },
        Err(_) => None,
    }
    .or(match &state {
        State::Held(h) => Some(h),
        _ => None,
    })
    .map(|h| HoldView {
        by: h.by.clone(),
        reason: h.reason.clone(),
        since: h.since.to_string(),
        until: h.until.map(|u| u.to_string()),
    });
    let (result, commit) = match &e.applied {
        Applied::Nothing => (None, None),
        Applied::Landed { commit, .. } => (Some("landed"), Some(commit.clone())),
        Applied::AlreadyInPlace => (Some("already-in-place"), None),
        Applied::Superseded { .. } => (Some("superseded"), None),
        Applied::Failed(_) => (Some("failed"), None),
        Applied::Skipped { .. } => (Some("skipped"), None),
        Applied::Proposed { .. } => (Some("proposed"), None),
        Applied::Declined { .. } => (Some("declined"), None),
    };
    let pull_request = match &e.applied {
        Applied::Proposed { number, url } => Some(PullRequestView {
            number: *number,
            url: url.clone(),
            state: "open",
        }),
        Applied::Declined { number, url } => Some(PullRequestView {
            number: *number,
            url: url.clone(),
            state: "closed",
        }),
        _ => None,
    };
    let error = match (&d.outcome, &e.applied) {
        (Err(p), _) => Some(ErrorView {
            class: p.class().into(),
            message: p.to_string(),
        }),
        (_, Applied::Failed(g)) => Some(ErrorView {
            class: g.class().into(),
            message: g.to_string(),
        }),
        _ => None,
    };
    let warnings = match &d.outcome {
        Ok(decided) => decided.warnings.iter().map(|w| w.to_string()).collect(),
        Err(_) => Vec::new(),
    };
    EnvView {
        promotion: d.key.promotion.clone(),
        environment: d.key.environment.clone(),
        repository: d.destination.repository.clone(),
        branch: d.destination.branch.clone(),
        image: d.image.to_string(),
        current: e.running(),
        best,
        decision,
        blocked,
        state: state.name(),
        state_text: state.to_string(),
        since,
        until,
        hold,
        waiting,
        rejected,
        warnings,
        result,
        commit,
        pull_request,
        error,
    }
}

/// The JSON document of a report (status, plan and once share it).
pub fn json(report: &PassReport, diff: Option<&str>) -> String {
    let environments: Vec<EnvView> = report
        .environments
        .iter()
        .map(|e| view(e, report.now))
        .collect();
    let mut doc = serde_json::json!({
        "now": report.now.to_string(),
        // One repository: its tip; several: each destination's (`repository@branch`).
        "tip": match report.tips.as_slice() {
            [(_, tip)] => Some(tip.clone()),
            _ => None,
        },
        "tips": report
            .tips
            .iter()
            .map(|(d, tip)| (d.to_string(), serde_json::Value::String(tip.clone())))
            .collect::<serde_json::Map<_, _>>(),
        "environments": environments,
        "error": report.error.as_ref().map(|e| e.to_string()),
    });
    if let Some(diff) = diff {
        doc["diff"] = serde_json::Value::String(diff.to_string());
    }
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}
