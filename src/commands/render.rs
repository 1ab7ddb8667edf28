//! What people and programs read: the decisions and states of a pass as text (a table for
//! `status`, a diff and reasons for `plan`, a summary for `once`) and as JSON. Pure: a
//! report in, text out.

use std::fmt::Write;

use jiff::Timestamp;
use serde::Serialize;

use crate::engine::{Applied, EnvReport, PassReport, State};
use crate::policy::{Blocked, Decision, Rejection};

/// One environment, as JSON shows it.
#[derive(Debug, Serialize)]
pub struct EnvView {
    /// The promotion.
    pub promotion: String,
    /// The environment.
    pub environment: String,
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
        "tip": report.tip,
        "environments": environments,
        "error": report.error.as_ref().map(|e| e.to_string()),
    });
    if let Some(diff) = diff {
        doc["diff"] = serde_json::Value::String(diff.to_string());
    }
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// The `status` table: one row per environment.
pub fn status_table(report: &PassReport) -> String {
    let header = ["PROMOTION", "ENV", "CURRENT", "BEST", "STATE", "DETAIL"];
    let rows: Vec<[String; 6]> = report
        .environments
        .iter()
        .map(|e| {
            let v = view(e, report.now);
            [
                v.promotion,
                v.environment,
                v.current.unwrap_or_else(|| "-".into()),
                v.best.unwrap_or_else(|| "-".into()),
                v.state_text,
                detail(e, report.now),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 6]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]);
    }
    if let Some(e) = &report.error {
        let _ = writeln!(out, "\nerror: {e}");
    }
    out
}

/// The one-line detail of an environment: the hold's reason, the failure, a warning about
/// what it runs, or the best tag that waits and why.
fn detail(e: &EnvReport, now: Timestamp) -> String {
    let warning = match &e.decision.outcome {
        Ok(d) => d.warnings.first().map(|w| format!("warning: {w}")),
        Err(_) => None,
    };
    match e.state(now) {
        State::Held(h) => {
            let mut s = format!("since {}", h.since);
            if let Some(r) = &h.reason {
                let _ = write!(s, ": {r}");
            }
            s
        }
        State::Failing { error, .. } => error,
        _ => warning.unwrap_or_else(|| match &e.decision.outcome {
            Ok(d) => match d.decision.waiting().first() {
                Some(w) => format!("{}: {}", w.tag, w.block),
                // Nothing waits: say which tags never qualified, and why.
                None => passed_over(&d.rejected)
                    .first()
                    .map(|(kind, tags)| format!("passed over, {kind}: {tags}"))
                    .unwrap_or_default(),
            },
            Err(_) => String::new(),
        }),
    }
}

/// The `plan` text: every environment's decision with the reasons better tags lost.
pub fn plan_text(report: &PassReport) -> String {
    let mut out = String::new();
    for e in &report.environments {
        let d = &e.decision;
        let current = d.current.as_deref().unwrap_or("(none)");
        let line = match &d.outcome {
            Err(p) => format!("error ({}): {p}", p.class()),
            Ok(decided) => match &decided.decision {
                Decision::UpToDate { current, .. } => format!("up to date at {current}"),
                Decision::Promote {
                    to, eligible_since, ..
                } => {
                    let mut s = format!("promote {current} -> {to}");
                    if let Some(since) = eligible_since {
                        let _ = write!(s, " (eligible since {since})");
                    }
                    if d.write == crate::rules::WriteMode::PullRequest {
                        let _ = write!(s, " by pull request from tagpromoter/{}", d.key);
                    }
                    match &e.applied {
                        Applied::Skipped { why } => {
                            let _ = write!(s, "; not written: {why}");
                        }
                        Applied::Proposed { number, url } => {
                            let _ = write!(s, "; in review: #{number} {url}");
                        }
                        Applied::Declined { number, url } => {
                            let _ = write!(s, "; declined: #{number} {url} was closed unmerged");
                        }
                        Applied::Failed(e) => {
                            let _ = write!(s, "; failing ({}): {e}", e.class());
                        }
                        _ => {}
                    }
                    s
                }
                Decision::Blocked { to, reason, .. } => match to {
                    Some(to) => format!("stays at {current}: {to} is eligible, and {reason}"),
                    None => format!("stays at {current}: {reason}"),
                },
            },
        };
        let _ = writeln!(out, "{}: {line}", d.key);
        if let Ok(decided) = &d.outcome {
            for w in decided.decision.waiting() {
                let _ = writeln!(out, "  {}: {}", w.tag, w.block);
            }
            for (kind, tags) in passed_over(&decided.rejected) {
                let _ = writeln!(out, "  passed over, {kind}: {tags}");
            }
            for w in &decided.warnings {
                let _ = writeln!(out, "  warning: {w}");
            }
        }
    }
    if let Some(e) = &report.error {
        let _ = writeln!(out, "error: {e}");
    }
    out
}

/// The tags a policy cannot place at all, grouped by why (`not a number: latest, edge`),
/// so that a tag people push but the policy never takes is visible. Exclusions (signatures)
/// and versions outside the range are left out: they are passed over by design.
fn passed_over(rejected: &[(crate::image::Tag, Rejection)]) -> Vec<(&'static str, String)> {
    const SHOWN: usize = 5;
    let mut groups: Vec<(&'static str, Vec<&str>)> = Vec::new();
    for (tag, why) in rejected {
        let kind = match why {
            Rejection::NotAVersion { .. } => {
                "not a version X.Y.Z (`semver: { range: …, loose: true }` reads 1.0 and v5 as versions)"
            }
            Rejection::NotANumber { .. } => "not a number",
            Rejection::NoCreationTime => "no creation time",
            Rejection::FilteredOut { .. } => "does not match the filter",
            _ => continue,
        };
        match groups.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, tags)) => tags.push(tag.as_str()),
            None => groups.push((kind, vec![tag.as_str()])),
        }
    }
    groups
        .into_iter()
        .map(|(kind, tags)| {
            let mut list = tags[..tags.len().min(SHOWN)].join(", ");
            if tags.len() > SHOWN {
                let _ = write!(list, " and {} more", tags.len() - SHOWN);
            }
            (kind, list)
        })
        .collect()
}

/// The `once` summary: one line per environment that moved or failed, then a count.
pub fn once_text(report: &PassReport) -> String {
    let mut out = String::new();
    for e in &report.environments {
        let d = &e.decision;
        let line = match (&d.outcome, &e.applied) {
            (Err(p), _) => format!("failed ({}): {p}", p.class()),
            (_, Applied::Landed { commit, .. }) => format!(
                "{} -> {} ({})",
                d.current.as_deref().unwrap_or("(none)"),
                d.promotes_to().map(|t| t.to_string()).unwrap_or_default(),
                &commit[..commit.len().min(12)]
            ),
            (_, Applied::Failed(g)) => format!("failed ({}): {g}", g.class()),
            (_, Applied::Superseded { found }) => format!(
                "left alone: someone changed it to {} meanwhile",
                found.as_deref().unwrap_or("nothing")
            ),
            (_, Applied::Skipped { why }) => format!("not written: {why}"),
            (_, Applied::Proposed { number, url }) => format!(
                "{} -> {} proposed in #{number} {url}",
                d.current.as_deref().unwrap_or("(none)"),
                d.promotes_to().map(|t| t.to_string()).unwrap_or_default()
            ),
            (_, Applied::Declined { number, url }) => {
                format!("#{number} {url} was closed unmerged; waiting for a newer tag")
            }
            _ => continue,
        };
        let _ = writeln!(out, "{}: {line}", d.key);
    }
    let failed = report
        .environments
        .iter()
        .filter(|e| e.problem().is_some())
        .count();
    let _ = writeln!(
        out,
        "{} landed, {failed} failed, {} environments in {:.1}s ({} registry requests)",
        report.landed(),
        report.environments.len(),
        report.duration.as_secs_f64(),
        report.registry_requests
    );
    if let Some(e) = &report.error {
        let _ = writeln!(out, "error: {e}");
    }
    out
}
