//! The promotion board at `/`: one row per promotion, one column per environment, from the
//! last pass's report — what runs, the state in words with its since/until, the best
//! eligible tag and what better tags wait for, the environment's last commits and its pull
//! request. Server-rendered HTML with inline styles and a few lines of script that refresh
//! it in place; no external assets. Pure: a report in, HTML out.

use std::fmt::Write;

use jiff::Timestamp;

use crate::engine::{EnvCommit, EnvReport, PassReport};
use crate::view::{EnvView, view};

/// How often an open board refreshes itself, in seconds.
pub const REFRESH_SECONDS: u32 = 5;

const STYLE: &str = r#"
:root { color-scheme: light dark; --ok: #1a7f37; --wait: #9a6700; --bad: #cf222e; --held: #8250df; --muted: #6e7781; }
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; padding: 1rem; max-width: 90rem; }
h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
header p { margin: 0 0 1rem; color: var(--muted); }
table { border-collapse: collapse; width: 100%; }
caption { text-align: left; color: var(--muted); padding-bottom: .5rem; }
th, td { border: 1px solid #8885; padding: .5rem; vertical-align: top; text-align: left; }
td { border-left: .35rem solid var(--muted); }
td[data-state="up-to-date"], td[data-state="ahead"] { border-left-color: var(--ok); }
td[data-state="soaking"], td[data-state="pending"], td[data-state="in-review"], td[data-state="waiting"] { border-left-color: var(--wait); }
td[data-state="failing"], td[data-state="stalled"] { border-left-color: var(--bad); }
td[data-state="held"], td[data-state="frozen"], td[data-state="declined"] { border-left-color: var(--held); }
.tag { font: 600 1.05rem ui-monospace, monospace; margin: 0; }
.warn { color: var(--bad); }
.state { font-weight: 600; margin: .2rem 0; }
td p, td ul { margin: .2rem 0; }
td ul { padding-left: 1.1rem; }
small, .muted { color: var(--muted); }
code { font-family: ui-monospace, monospace; }
.error { color: var(--bad); }
@media (max-width: 40rem) {
  thead { position: absolute; left: -9999px; }
  table, tbody, tr, th, td { display: block; width: auto; }
  tr { margin-bottom: 1rem; }
  caption { display: block; }
  td::before { content: attr(data-env); display: block; font-weight: 700; }
  td.absent { display: none; }
}
"#;

const SCRIPT: &str = r#"
(function () {
  var seconds = Number(document.body.dataset.refresh) || 5;
  setInterval(function () {
    if (document.hidden) { return; }
    fetch(location.href, { cache: "no-store" }).then(function (r) {
      return r.ok ? r.text() : null;
    }).then(function (html) {
      if (!html) { return; }
      var fresh = new DOMParser().parseFromString(html, "text/html");
      ["updated", "board"].forEach(function (id) {
        var now = document.getElementById(id), next = fresh.getElementById(id);
        if (now && next) { now.replaceWith(next); }
      });
    }).catch(function () { /* the worker restarts: try again next time */ });
  }, seconds * 1000);
})();
"#;

/// The page's Content-Security-Policy: nothing loads from anywhere, and only the page's own
/// style and script (by their hashes) apply, so text from the repository or a registry that
/// slipped past escaping could not run. Computed once.
pub fn content_security_policy() -> &'static str {
    static POLICY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        use base64::Engine;
        use sha2::Digest;
        let hash = |text: &str| {
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(text.as_bytes()))
        };
        format!(
            "default-src 'none'; style-src 'sha256-{}'; script-src 'sha256-{}'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            hash(STYLE),
            hash(SCRIPT)
        )
    });
    &POLICY
}

/// The whole page for the last pass (`None`: none finished yet).
pub fn page(report: Option<&PassReport>) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <link rel=\"icon\" href=\"data:,\">\n<title>tagpromoter: promotions</title>\n\
         <style>{STYLE}</style>\n</head>\n<body data-refresh=\"{REFRESH_SECONDS}\">\n\
         <header>\n<h1>Promotions</h1>\n"
    );
    match report {
        None => {
            out.push_str("<p id=\"updated\" aria-live=\"polite\">No pass has finished yet; this page refreshes itself.</p>\n</header>\n<main id=\"board\"></main>\n");
        }
        Some(report) => {
            let _ = writeln!(
                out,
                "<p id=\"updated\" aria-live=\"polite\">Last pass {} in {:.1}s{}{}</p>\n</header>",
                time(report.now),
                report.duration.as_secs_f64(),
                match report.tips.as_slice() {
                    [] => String::new(),
                    [(_, tip)] => format!(" at commit <code>{}</code>", esc(short(tip))),
                    tips => format!(
                        " at {}",
                        tips.iter()
                            .map(|(d, tip)| format!(
                                "{} <code>{}</code>",
                                esc(&d.to_string()),
                                esc(short(tip))
                            ))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
                report
                    .error
                    .as_ref()
                    .map(|e| format!(
                        " — <strong class=\"error\">failed: {}</strong>",
                        esc(&e.to_string())
                    ))
                    .unwrap_or_default(),
            );
            out.push_str("<main id=\"board\">\n");
            table(&mut out, report);
            out.push_str("</main>\n");
        }
    }
    let _ = write!(out, "<script>{SCRIPT}</script>\n</body>\n</html>\n");
    out
}

fn table(out: &mut String, report: &PassReport) {
    // Columns: every environment name, in the order the promotions first name them.
    let mut columns: Vec<&str> = Vec::new();
    let mut rows: Vec<(&str, &str, Vec<&EnvReport>)> = Vec::new();
    for e in &report.environments {
        let key = &e.decision.key;
        if !columns.contains(&key.environment.as_str()) {
            columns.push(&key.environment);
        }
        match rows.last_mut() {
            Some((p, _, envs)) if *p == key.promotion => envs.push(e),
            _ => rows.push((&key.promotion, e.decision.image.as_str(), vec![e])),
        }
    }
    if rows.is_empty() {
        out.push_str("<p>The rules name no promotions.</p>\n");
        return;
    }
    out.push_str("<table>\n<caption>Each row is a promotion, each column an environment of its chain.</caption>\n<thead><tr><th scope=\"col\">Promotion</th>");
    for c in &columns {
        let _ = write!(out, "<th scope=\"col\">{}</th>", esc(c));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for (promotion, image, envs) in rows {
        let _ = write!(
            out,
            "<tr><th scope=\"row\">{}<br><small>{}</small></th>",
            esc(promotion),
            esc(image)
        );
        for c in &columns {
            match envs.iter().find(|e| e.decision.key.environment == *c) {
                Some(e) => cell(out, e, report.now, report.tips.len() > 1),
                None => {
                    let _ = write!(
                        out,
                        "<td data-env=\"{}\" class=\"muted absent\">not in this chain</td>",
                        esc(c)
                    );
                }
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

/// One environment's cell; `where_to` names the repository and branch it writes to (when
/// the fleet writes to several).
fn cell(out: &mut String, e: &EnvReport, now: Timestamp, where_to: bool) {
    let v: EnvView = view(e, now);
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
    let _ = write!(out, "<p class=\"state\">{}</p>", state(&v));
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
    commits(out, &e.recent);
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
    match v.state {
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
fn commits(out: &mut String, recent: &[EnvCommit]) {
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
            time(c.time)
        );
    }
    out.push_str("</ul></details>");
}

fn short(id: &str) -> &str {
    id.get(..7).unwrap_or(id)
}

fn time(t: Timestamp) -> String {
    let text = t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string();
    format!("<time datetime=\"{t}\">{text}</time>")
}

fn time_text(t: &str) -> String {
    match t.parse::<Timestamp>() {
        Ok(t) => time(t),
        Err(_) => esc(t),
    }
}

/// Text safe in HTML content and attribute values.
fn esc(s: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_the_repository_is_escaped() {
        assert_eq!(
            esc("<script>\"x\" & 'y'"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn before_the_first_pass_the_board_says_so() {
        let page = page(None);
        assert!(page.contains("No pass has finished yet"));
        assert!(page.contains("<html lang=\"en\">"));
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "no external assets"
        );
    }
}
