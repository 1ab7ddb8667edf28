//! The promotion board at `/` of `tagpromoter run`, in a real headless Chromium (driven
//! through chromedriver): it shows the fleet's states in a semantic table, stacks on a
//! phone's width, refreshes itself in place after a pass, and logs nothing to the console.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::engine::Fleet;
use crate::support::browser::Browser;
use crate::support::free_port;
use crate::support::oci::Pusher;
use crate::support::worker::Worker;

/// A script returning `what` (an expression of `td`) for promotion `promotion`'s cell of
/// environment `env`.
fn cell_script(promotion: &str, env: &str, what: &str) -> String {
    format!(
        r#"for (const tr of document.querySelectorAll('tbody tr')) {{
             if (tr.querySelector('th').firstChild.textContent.trim() !== {promotion:?}) continue;
             const td = tr.querySelector('td[data-env={env:?}]');
             return td ? {what} : null;
           }}
           return null;"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_board_shows_the_fleet_and_refreshes_itself_in_a_real_browser() {
    let fleet = Fleet::start().await;
    let port = free_port();
    let worker = Worker::start(
        fleet.rules.path(),
        fleet.cache.path(),
        port,
        &["--registry-timeout", "2s"],
    )
    .await;
    // Nothing but the page's own style and script may run (the browser below shows they do).
    let page = reqwest::get(format!("{}/", worker.base)).await.unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.starts_with("default-src 'none'; style-src 'sha256-"),
        "{csp}"
    );
    let browser = Browser::start(1280, 900).await;
    browser.open(&format!("{}/", worker.base)).await;

    let columns = browser.eval("return [...document.querySelectorAll('thead th[scope=col]')].map(th => th.textContent)").await;
    assert_eq!(
        columns,
        serde_json::json!(["Promotion", "dev", "staging", "prod"])
    );
    let rows = browser.eval("return [...document.querySelectorAll('tbody th[scope=row]')].map(th => th.firstChild.textContent)").await;
    assert_eq!(
        rows,
        // Trouble first: the failing promotions, then the others in the rules' order.
        serde_json::json!(["broken", "ghost", "podinfo", "billing"])
    );
    assert_eq!(
        browser
            .eval("return document.querySelector('table caption') !== null")
            .await,
        Value::Bool(true)
    );

    // The states, in words (the colour only repeats them).
    let b = &browser;
    let text = move |p: &str, e: &str| {
        let script = cell_script(p, e, "td.innerText");
        async move { b.eval(&script).await }
    };
    let state = move |p: &str, e: &str| {
        let script = cell_script(p, e, "td.dataset.state");
        async move { b.eval(&script).await }
    };
    assert_eq!(state("podinfo", "dev").await, "up-to-date");
    let dev = text("podinfo", "dev").await;
    let dev = dev.as_str().unwrap();
    assert!(dev.starts_with("6.6.0-rc.1"), "{dev}");
    assert!(dev.contains("Up to date"), "{dev}");
    let commits = browser
        .eval(&cell_script(
            "podinfo",
            "dev",
            "[...td.querySelectorAll('details li')].map(li => li.textContent)",
        ))
        .await;
    assert!(
        commits[0].as_str().unwrap().contains("6.6.0-rc.1"),
        "the last commit and its subject: {commits}"
    );
    assert!(
        commits
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.as_str().unwrap().contains("initial")),
        "{commits}"
    );
    for (p, e) in [("broken", "dev"), ("ghost", "dev")] {
        assert_eq!(state(p, e).await, "failing");
        let t = text(p, e).await;
        assert!(t.as_str().unwrap().contains("Failing: "), "{p}/{e}: {t}");
    }
    assert_eq!(text("billing", "dev").await, "not in this chain");
    assert!(
        text("billing", "prod")
            .await
            .as_str()
            .unwrap()
            .starts_with("1.1.0")
    );
    let unlabelled = browser.eval("return [...document.querySelectorAll('td[data-state]')].filter(td => !td.querySelector('.state') || !td.querySelector('.state').textContent.trim()).length").await;
    assert_eq!(unlabelled, 0, "every state is written out");

    // A new tag; after a pass the open page shows it without being reloaded.
    browser
        .eval("window.__notReloaded = true; return null")
        .await;
    Pusher::new(&fleet.registry.addr)
        .image(
            "acme/billing",
            Some("1.2.0"),
            "2026-11-19T00:00:00Z",
            "linux",
            "amd64",
        )
        .await;
    let started = Instant::now();
    loop {
        let t = text("billing", "prod").await;
        if t.as_str().is_some_and(|t| t.starts_with("1.2.0")) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the board never showed 1.2.0: {t}\n{}",
            worker.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("the board showed 1.2.0 after {:?}", started.elapsed());
    assert_eq!(
        browser.eval("return window.__notReloaded === true").await,
        Value::Bool(true),
        "refreshed in place"
    );

    // `BOARD_SCREENSHOTS=dir` keeps what the browsers saw, for a person to look at.
    let keep = std::env::var_os("BOARD_SCREENSHOTS").map(std::path::PathBuf::from);
    if let Some(dir) = &keep {
        std::fs::write(dir.join("board-desktop.png"), browser.screenshot().await).unwrap();
    }
    let console = browser.console().await;
    let errors: Vec<_> = console
        .iter()
        .filter(|(level, _)| level == "SEVERE" || level == "WARNING")
        .collect();
    assert!(errors.is_empty(), "console: {errors:?}");

    // On a phone's width the table stacks: no sideways scrolling, each cell names its
    // environment.
    let phone = Browser::start(390, 844).await;
    phone.open(&format!("{}/", worker.base)).await;
    let fits = phone
        .eval("return document.documentElement.scrollWidth <= window.innerWidth")
        .await;
    assert_eq!(
        fits,
        Value::Bool(true),
        "the board scrolls sideways on a phone"
    );
    let label = phone.eval("const td = document.querySelector('td[data-env]'); return [getComputedStyle(td).display, getComputedStyle(td, '::before').content]").await;
    assert_eq!(label, serde_json::json!(["block", "\"dev\""]));
    if let Some(dir) = &keep {
        std::fs::write(dir.join("board-phone.png"), phone.screenshot().await).unwrap();
    }
    assert!(
        phone
            .console()
            .await
            .iter()
            .all(|(level, _)| level != "SEVERE")
    );
    worker.stop();
}
