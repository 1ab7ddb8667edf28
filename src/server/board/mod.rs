//! The promotion board at `/`: one row per promotion, one column per environment, from the
//! last pass of this worker and — in a sharded fleet — of its peers (their `/status`).
//! Counts by state over the whole fleet at the top; promotions that fail, stall or are held
//! first; a filter by name, repository and state; 50 promotions a page, so that a fleet of
//! 10,000 stays a page a browser refreshes every few seconds. Server-rendered HTML with
//! inline styles and a few lines of script that refresh it in place; no external assets.
//! Pure: statuses in, HTML out.

mod cell;

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Deserialize;

use crate::view::{EnvView, StatusDoc};
use cell::{esc, short, time_text};

/// How often an open board refreshes itself, in seconds.
pub const REFRESH_SECONDS: u32 = 5;

/// Promotions on one page.
pub const PAGE_SIZE: usize = 50;

/// One shard's last pass, or why it could not be asked.
#[derive(Debug, Clone)]
pub struct ShardStatus {
    /// The shard's index.
    pub index: usize,
    /// Its `/status`.
    pub status: Result<StatusDoc, String>,
}

/// What the person asked to see (the page's query string).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BoardQuery {
    /// Part of a promotion's name.
    pub q: Option<String>,
    /// A repository's name.
    pub repository: Option<String>,
    /// A state (`failing`, `stalled`, `held`, …).
    pub state: Option<String>,
    /// The page, from 1.
    pub page: Option<usize>,
}

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
td[data-state="deploying"] { border-left-color: var(--wait); }
td[data-state="failing"], td[data-state="stalled"], td[data-state="unhealthy"], td[data-state="mismatch"], td[data-state="unknown"] { border-left-color: var(--bad); }
td[data-state="held"], td[data-state="frozen"], td[data-state="declined"] { border-left-color: var(--held); }
.tag { font: 600 1.05rem ui-monospace, monospace; margin: 0; }
.warn { color: var(--bad); }
.state { font-weight: 600; margin: .2rem 0; }
td p, td ul { margin: .2rem 0; }
td ul { padding-left: 1.1rem; }
small, .muted { color: var(--muted); }
code { font-family: ui-monospace, monospace; }
.error { color: var(--bad); }
#counts { display: flex; flex-wrap: wrap; gap: .4rem 1rem; margin: 0 0 .75rem; padding: 0; list-style: none; }
#counts a { text-decoration: none; }
form { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; margin: 0 0 1rem; }
form label { display: flex; flex-direction: column; font-size: .85rem; color: var(--muted); }
nav.pages { margin: .75rem 0; display: flex; gap: 1rem; }
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
/// slipped past escaping could not run; the filter form submits only here. Computed once.
pub fn content_security_policy() -> &'static str {
    static POLICY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        use base64::Engine;
        use sha2::Digest;
        let hash = |text: &str| {
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(text.as_bytes()))
        };
        format!(
            "default-src 'none'; style-src 'sha256-{}'; script-src 'sha256-{}'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
            hash(STYLE),
            hash(SCRIPT)
        )
    });
    &POLICY
}

/// How a promotion ranks: trouble first.
fn rank(state: &str) -> u8 {
    match state {
        "failing" | "unhealthy" | "mismatch" => 0,
        "stalled" | "unknown" => 1,
        "held" => 2,
        _ => 3,
    }
}

/// The whole page for the fleet's last passes (empty: none finished yet).
pub fn page(fleet: &[&ShardStatus], query: &BoardQuery) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <link rel=\"icon\" href=\"data:,\">\n<title>tagpromoter: promotions</title>\n\
         <style>{STYLE}</style>\n</head>\n<body data-refresh=\"{REFRESH_SECONDS}\">\n\
         <header>\n<h1>Promotions</h1>\n"
    );
    let passed: Vec<(usize, &StatusDoc)> = fleet
        .iter()
        .filter_map(|s| s.status.as_ref().ok().map(|d| (s.index, d)))
        .collect();
    if passed.is_empty() && fleet.iter().all(|s| s.status.is_ok()) {
        out.push_str("<p id=\"updated\" aria-live=\"polite\">No pass has finished yet; this page refreshes itself.</p>\n</header>\n<main id=\"board\"></main>\n");
    } else {
        updated(&mut out, fleet);
        out.push_str("</header>\n");
        let environments: Vec<&EnvView> = passed
            .iter()
            .flat_map(|(_, d)| d.environments.iter())
            .collect();
        filter_form(&mut out, &environments, query);
        out.push_str("<main id=\"board\">\n");
        counts(&mut out, &environments);
        table(&mut out, &environments, query);
        out.push_str("</main>\n");
    }
    let _ = write!(out, "<script>{SCRIPT}</script>\n</body>\n</html>\n");
    out
}

/// The first page of one worker's board after `report`.
pub fn page_of(report: &crate::engine::PassReport) -> String {
    let own = ShardStatus {
        index: 0,
        status: Ok(crate::view::status_doc(report, None)),
    };
    page(&[&own], &BoardQuery::default())
}

/// When each shard last passed (or why it could not be asked).
fn updated(out: &mut String, fleet: &[&ShardStatus]) {
    out.push_str("<div id=\"updated\" aria-live=\"polite\">");
    let sharded = fleet.len() > 1;
    for s in fleet {
        let who = if sharded {
            format!("Shard {}: l", s.index)
        } else {
            "L".to_string()
        };
        match &s.status {
            Ok(d) => {
                let tips = match (&d.tip, d.tips.len()) {
                    (Some(tip), _) => format!(" at commit <code>{}</code>", esc(short(tip))),
                    (None, 0) => String::new(),
                    (None, _) => format!(
                        " at {}",
                        d.tips
                            .iter()
                            .map(|(dest, tip)| format!(
                                "{} <code>{}</code>",
                                esc(dest),
                                esc(short(tip))
                            ))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                let failed = d
                    .error
                    .as_ref()
                    .map(|e| format!(" — <strong class=\"error\">failed: {}</strong>", esc(e)))
                    .unwrap_or_default();
                let _ = write!(
                    out,
                    "<p>{who}ast pass {} in {:.1}s{tips}{failed}</p>",
                    time_text(&d.now),
                    d.duration_seconds
                );
            }
            Err(why) => {
                let _ = write!(
                    out,
                    "<p class=\"error\">{who}ast pass unknown: {}</p>",
                    esc(why)
                );
            }
        }
    }
    out.push_str("</div>\n");
}

/// The filter: by name, repository and state (a GET form: the query string is the state).
fn filter_form(out: &mut String, environments: &[&EnvView], query: &BoardQuery) {
    let mut repositories: Vec<&str> = environments.iter().map(|e| e.repository.as_str()).collect();
    repositories.sort_unstable();
    repositories.dedup();
    let mut states: Vec<&str> = environments.iter().map(|e| e.state.as_str()).collect();
    states.sort_unstable();
    states.dedup();
    let select =
        |out: &mut String, name: &str, label: &str, options: &[&str], chosen: Option<&str>| {
            let _ = write!(
                out,
                "<label>{label}<select name=\"{name}\"><option value=\"\">all</option>"
            );
            for o in options {
                let selected = if chosen == Some(*o) { " selected" } else { "" };
                let _ = write!(out, "<option{selected}>{}</option>", esc(o));
            }
            out.push_str("</select></label>");
        };
    out.push_str("<form method=\"get\" action=\"\" role=\"search\">");
    let _ = write!(
        out,
        "<label>Promotion<input type=\"search\" name=\"q\" value=\"{}\"></label>",
        esc(query.q.as_deref().unwrap_or_default())
    );
    if repositories.len() > 1 {
        select(
            out,
            "repository",
            "Repository",
            &repositories,
            query.repository.as_deref(),
        );
    }
    select(out, "state", "State", &states, query.state.as_deref());
    out.push_str("<button type=\"submit\">Show</button></form>\n");
}

/// How many environments are in each state, each a link to them.
fn counts(out: &mut String, environments: &[&EnvView]) {
    let mut by: BTreeMap<(u8, &str), usize> = BTreeMap::new();
    for e in environments {
        *by.entry((rank(&e.state), e.state.as_str())).or_default() += 1;
    }
    out.push_str("<ul id=\"counts\" aria-label=\"Environments by state\">");
    for ((_, state), n) in by {
        let _ = write!(
            out,
            "<li><a href=\"?state={}\">{n} {}</a></li>",
            esc(state),
            esc(state)
        );
    }
    out.push_str("</ul>\n");
}

/// The promotions `query` selects, trouble first, one page of them.
fn table(out: &mut String, environments: &[&EnvView], query: &BoardQuery) {
    // Rows in the order promotions first appear; each row's environments in theirs.
    let mut rows: Vec<(&str, &str, Vec<&EnvView>)> = Vec::new();
    let mut at: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for e in environments {
        match at.get(e.promotion.as_str()) {
            Some(&i) => rows[i].2.push(e),
            None => {
                at.insert(&e.promotion, rows.len());
                rows.push((&e.promotion, &e.image, vec![e]));
            }
        }
    }
    let wanted = |(name, _, envs): &(&str, &str, Vec<&EnvView>)| {
        query
            .q
            .as_deref()
            .is_none_or(|q| q.is_empty() || name.contains(q))
            && query
                .repository
                .as_deref()
                .is_none_or(|r| r.is_empty() || envs.iter().any(|e| e.repository == r))
            && query
                .state
                .as_deref()
                .is_none_or(|s| s.is_empty() || envs.iter().any(|e| e.state == s))
    };
    let mut rows: Vec<_> = rows.into_iter().filter(wanted).collect();
    rows.sort_by_key(|(_, _, envs)| envs.iter().map(|e| rank(&e.state)).min().unwrap_or(3));
    if rows.is_empty() {
        let none = if environments.is_empty() {
            "The rules name no promotions."
        } else {
            "No promotion matches the filter."
        };
        let _ = writeln!(out, "<p>{none}</p>");
        return;
    }
    let pages = rows.len().div_ceil(PAGE_SIZE);
    let page = query.page.unwrap_or(1).clamp(1, pages);
    let shown = &rows[(page - 1) * PAGE_SIZE..(page * PAGE_SIZE).min(rows.len())];
    // Columns: every environment name on this page, in the order its promotions name them.
    let mut columns: Vec<&str> = Vec::new();
    for (_, _, envs) in shown {
        for e in envs {
            if !columns.contains(&e.environment.as_str()) {
                columns.push(&e.environment);
            }
        }
    }
    let several = environments.iter().any(|e| {
        (&e.repository, &e.branch) != (&environments[0].repository, &environments[0].branch)
    });
    out.push_str("<table>\n<caption>Each row is a promotion, each column an environment of its chain.</caption>\n<thead><tr><th scope=\"col\">Promotion</th>");
    for c in &columns {
        let _ = write!(out, "<th scope=\"col\">{}</th>", esc(c));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for (promotion, image, envs) in shown {
        let _ = write!(
            out,
            "<tr><th scope=\"row\">{}<br><small>{}</small></th>",
            esc(promotion),
            esc(image)
        );
        for c in &columns {
            match envs.iter().find(|e| e.environment == *c) {
                Some(e) => cell::cell(out, e, several),
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
    if pages > 1 {
        pager(out, query, page, pages);
    }
}

/// Links to the previous and next pages, the filter kept.
fn pager(out: &mut String, query: &BoardQuery, page: usize, pages: usize) {
    let link = |to: usize| {
        let mut q = format!("?page={to}");
        for (k, v) in [
            ("q", &query.q),
            ("repository", &query.repository),
            ("state", &query.state),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                let _ = write!(
                    q,
                    "&amp;{k}={}",
                    esc(&crate::registry::tags::encode_query(v))
                );
            }
        }
        q
    };
    out.push_str("<nav class=\"pages\" aria-label=\"Pages\">");
    if page > 1 {
        let _ = write!(
            out,
            "<a href=\"{}\" rel=\"prev\">Previous</a>",
            link(page - 1)
        );
    }
    let _ = write!(out, "<span>Page {page} of {pages}</span>");
    if page < pages {
        let _ = write!(out, "<a href=\"{}\" rel=\"next\">Next</a>", link(page + 1));
    }
    out.push_str("</nav>\n");
}

#[cfg(test)]
mod tests {
    use super::cell::esc;
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
        let page = page(&[], &BoardQuery::default());
        assert!(page.contains("No pass has finished yet"));
        assert!(page.contains("<html lang=\"en\">"));
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "no external assets"
        );
    }

    fn env(promotion: &str, environment: &str, state: &str) -> EnvView {
        serde_json::from_value(serde_json::json!({
            "promotion": promotion, "environment": environment, "repository": "default",
            "branch": "main", "image": "ghcr.io/acme/app", "current": "1.0.0", "best": "1.0.0",
            "decision": "up-to-date", "blocked": null, "state": state, "state_text": state,
            "since": null, "until": null, "hold": null, "waiting": [], "rejected": [],
            "warnings": [], "result": null, "commit": null, "pull_request": null,
            "error": null,
        }))
        .unwrap()
    }

    fn shard(environments: Vec<EnvView>) -> ShardStatus {
        ShardStatus {
            index: 0,
            status: Ok(StatusDoc {
                now: "2026-11-20T10:00:00Z".into(),
                duration_seconds: 1.0,
                tip: None,
                tips: Default::default(),
                environments,
                error: None,
                diff: None,
                shard: None,
            }),
        }
    }

    fn rows(page: &str) -> Vec<String> {
        page.split("<th scope=\"row\">")
            .skip(1)
            .map(|r| r.split('<').next().unwrap().to_string())
            .collect()
    }

    /// Failing promotions come first, then stalled, then held, the rest in the rules'
    /// order; the counts at the top cover the whole fleet, whatever the page shows.
    #[test]
    fn trouble_comes_first_and_the_counts_cover_everything() {
        let fleet = [shard(vec![
            env("a", "dev", "up-to-date"),
            env("b", "dev", "held"),
            env("c", "dev", "up-to-date"),
            env("c", "prod", "failing"),
            env("d", "dev", "stalled"),
        ])];
        let page = page(&[&fleet[0]], &BoardQuery::default());
        assert_eq!(rows(&page), ["c", "d", "b", "a"]);
        assert!(
            page.contains("<a href=\"?state=up-to-date\">2 up-to-date</a>"),
            "{page}"
        );
        assert!(
            page.contains("<a href=\"?state=failing\">1 failing</a>"),
            "{page}"
        );
    }

    /// 10,000 promotions are shown 50 at a time, filtered by name, repository and state.
    #[test]
    fn ten_thousand_promotions_come_in_pages_and_filter() {
        let envs: Vec<EnvView> = (0..10_000)
            .map(|i| {
                env(
                    &format!("app-{i:05}"),
                    "dev",
                    if i % 100 == 0 {
                        "failing"
                    } else {
                        "up-to-date"
                    },
                )
            })
            .collect();
        let fleet = [shard(envs)];
        let first = page(&[&fleet[0]], &BoardQuery::default());
        assert_eq!(rows(&first).len(), PAGE_SIZE);
        assert_eq!(rows(&first)[0], "app-00000");
        assert_eq!(rows(&first)[1], "app-00100", "failing first");
        assert!(first.contains("Page 1 of 200"), "page count");
        assert!(first.len() < 200_000, "{} bytes", first.len());
        let third = page(
            &[&fleet[0]],
            &BoardQuery {
                page: Some(3),
                ..BoardQuery::default()
            },
        );
        assert!(third.contains("Page 3 of 200"));
        let named = page(
            &[&fleet[0]],
            &BoardQuery {
                q: Some("app-0999".into()),
                ..BoardQuery::default()
            },
        );
        assert_eq!(rows(&named).len(), 10);
        let failing = page(
            &[&fleet[0]],
            &BoardQuery {
                state: Some("failing".into()),
                ..BoardQuery::default()
            },
        );
        assert_eq!(rows(&failing).len(), PAGE_SIZE);
        assert!(failing.contains("Page 1 of 2"));
        let elsewhere = page(
            &[&fleet[0]],
            &BoardQuery {
                repository: Some("other".into()),
                ..BoardQuery::default()
            },
        );
        assert!(rows(&elsewhere).is_empty());
        assert!(elsewhere.contains("No promotion matches"));
    }
}
