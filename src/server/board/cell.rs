//! One environment's cell of the board, from its view (this worker's or a peer's): what
//! runs, the state in words with its since/until, the best eligible tag and what better
//! tags wait for, its pull request, failure and last commits.

use std::fmt::Write;

use jiff::Timestamp;

use crate::view::{CommitView, EnvView};

/// One environment's cell; `where_to` names the repository and branch it writes to (when
/// the fleet writes to several).
pub(super) fn cell(out: &mut String, v: &EnvView, where_to: bool) {
    let _ = write!(
        out,
        "<td data-env=\"{}\" data-state=\"{}\">",
        esc(&v.environment),
        v.state
    );
    if where_to {
        let _ = write!(
            out,
            "<p class=\"muted\"><small>{}@{}</small></p>",
            esc(&v.repository),
            esc(&v.branch)
        );
    }
    let _ = write!(
        out,
        "<p class=\"tag\">{}</p>",
        v.current
            .as_deref()
            .map(esc)
            .unwrap_or_else(|| "<span class=\"muted\">nothing yet</span>".into())
    );
    let _ = write!(out, "<p class=\"state\">{}</p>", state(v));
    if let Some(best) = v
        .best
        .as_deref()
        .filter(|b| Some(*b) != v.current.as_deref())
    {
        let _ = write!(out, "<p>Best eligible: <code>{}</code></p>", esc(best));
    }
    if let Some(w) = v.waiting.first() {
        let _ = write!(
            out,
            "<p><small>Waits: <code>{}</code> {}</small></p>",
            esc(&w.tag),
            esc(&w.why)
        );
    }
    for w in &v.warnings {
        let _ = write!(out, "<p class=\"warn\">Warning: {}</p>", esc(w));
    }
    if let Some(pr) = &v.pull_request {
        let _ = write!(
            out,
            "<p><a href=\"{}\">Pull request #{}</a> ({})</p>",
            esc(&pr.url),
            pr.number,
            pr.state
        );
    }
    if let Some(err) = &v.error {
        let _ = write!(
            out,
            "<p class=\"error\"><small>{}</small></p>",
            esc(&err.message)
        );
    }
    commits(out, &v.recent);
    out.push_str("</td>");
}

/// The state in words, with its since/until; the words carry it, the colour only repeats it.
fn state(v: &EnvView) -> String {
    let until = v
        .until
        .as_deref()
        .map(|u| format!(" until {}", time_text(u)))
        .unwrap_or_default();
    let since = v
        .since
        .as_deref()
        .map(|s| format!(" since {}", time_text(s)))
        .unwrap_or_default();
    match v.state.as_str() {
        "up-to-date" => "Up to date".into(),
        "soaking" => format!("Soaking{until}"),
        "frozen" => format!("Frozen{until}"),
        "pending" => "Pending: a better tag is eligible".into(),
        "stalled" => format!("Stalled{since}"),
        "held" => match &v.hold {
            Some(h) => format!(
                "Held by {}{}{}{}",
                esc(&h.by),
                since,
                if until.is_empty() {
                    " until released".into()
                } else {
                    until.clone()
                },
                h.reason
                    .as_deref()
                    .map(|r| format!(": {}", esc(r)))
                    .unwrap_or_default()
            ),
            None => format!("Held{since}{until}"),
        },
        // The controller's own words are in the text.
        "deploying" | "unhealthy" | "mismatch" | "unknown" => {
            let text = esc(&v.state_text);
            let mut chars = text.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        }
        "in-review" => "In review".into(),
        "waiting" => "Waiting: a newer tag cannot be taken yet".into(),
        "ahead" => "Ahead of the policy's best: kept as a person set it".into(),
        "declined" => "Declined: the pull request was closed unmerged".into(),
        "failing" => format!(
            "Failing: {}",
            esc(v
                .error
                .as_ref()
                .map(|e| e.class.as_str())
                .unwrap_or("error"))
        ),
        other => esc(other),
    }
}

/// The environment's last commits, newest first.
fn commits(out: &mut String, recent: &[CommitView]) {
    if recent.is_empty() {
        return;
    }
    out.push_str("<details><summary>Last commits</summary><ul>");
    for c in recent {
        let _ = write!(
            out,
            "<li><code>{}</code> {} <small>by {}, {}</small></li>",
            esc(short(&c.id)),
            esc(&c.subject),
            esc(&c.author),
            time_text(&c.time)
        );
    }
    out.push_str("</ul></details>");
}

pub(super) fn short(id: &str) -> &str {
    id.get(..7).unwrap_or(id)
}

pub(super) fn time(t: Timestamp) -> String {
    let text = t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string();
    format!("<time datetime=\"{t}\">{text}</time>")
}

pub(super) fn time_text(t: &str) -> String {
    match t.parse::<Timestamp>() {
        Ok(t) => time(t),
        Err(_) => esc(t),
    }
}

/// Text safe in HTML content and attribute values.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
