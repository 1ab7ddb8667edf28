//! The text people read in a terminal: the `status` table, `plan`'s reasons and `once`'s
//! summary.

use std::fmt::Write;

use jiff::Timestamp;

use super::view;
use crate::engine::{Applied, EnvReport, PassReport, State};
use crate::policy::{Decision, Rejection};

/// The `status` table: one row per environment.
/// `text` on one line: a control character (a newline, a tab, a terminal escape) — which a
/// server's error message could carry to forge a line or recolour a terminal — becomes a
/// space.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

pub fn status_table(report: &PassReport) -> String {
    // Where each environment writes is a column once the fleet writes to several places.
    let first = report.environments.first().map(|e| &e.decision.destination);
    let several = report
        .environments
        .iter()
        .any(|e| Some(&e.decision.destination) != first);
    let mut header = vec!["PROMOTION", "ENV", "CURRENT", "BEST", "STATE", "DETAIL"];
    if several {
        header.insert(2, "REPOSITORY");
    }
    let rows: Vec<Vec<String>> = report
        .environments
        .iter()
        .map(|e| {
            let v = view(e, report.now);
            let mut row = vec![
                v.promotion,
                v.environment,
                v.current.unwrap_or_else(|| "-".into()),
                v.best.unwrap_or_else(|| "-".into()),
                v.state_text,
                detail(e, report.now),
            ];
            if several {
                row.insert(2, e.decision.destination.to_string());
            }
            row.iter().map(|cell| one_line(cell)).collect()
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
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
    line(&header);
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        line(&cells);
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
            if let Some(how) = e.lifted_by(now) {
                let _ = write!(s, "; {how}");
            }
            s
        }
        State::Frozen { .. } | State::Ahead { .. } | State::Declined { .. } => {
            e.lifted_by(now).unwrap_or_default()
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
                // Said as `status` says it: a newer tag that waits is not "up to date".
                Decision::UpToDate { current, .. } => match e.state(report.now) {
                    State::UpToDate => format!("up to date at {current}"),
                    state => format!("stays at {current}: {state}"),
                },
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
                        // What the edit's checks turn down, `once` would too.
                        Applied::Failed(e) if e.class() == "target" => {
                            let _ = write!(s, "; refused: {e}");
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
        if let Some(how) = e.lifted_by(report.now) {
            let _ = writeln!(out, "  {how}");
        }
        if let Ok(decided) = &d.outcome {
            for w in decided.decision.waiting() {
                let _ = writeln!(out, "  {}: {}", w.tag, w.block);
            }
            for (kind, tags) in passed_over(&decided.rejected) {
                let _ = writeln!(out, "  passed over, {kind}: {tags}");
            }
            // An environment that does not move: the nearest tags its policy turned down.
            if !matches!(decided.decision, Decision::Promote { .. })
                && decided.decision.waiting().is_empty()
            {
                for (tag, why) in turned_down(&decided.rejected) {
                    let _ = writeln!(out, "  turned down {tag}: {why}");
                }
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

/// The newest few tags the policy turned down for reasons `passed_over` does not list (a
/// version outside the range, most often): the last listed first.
fn turned_down(rejected: &[(crate::image::Tag, Rejection)]) -> Vec<(&str, String)> {
    const SHOWN: usize = 5;
    rejected
        .iter()
        .rev()
        .filter(|(_, why)| matches!(why, Rejection::OutOfRange { .. }))
        .take(SHOWN)
        .map(|(tag, why)| (tag.as_str(), why.to_string()))
        .collect()
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
        let _ = writeln!(out, "{}: {}", d.key, one_line(&line));
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
