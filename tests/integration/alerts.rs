//! Alerts end to end: the real Alertmanager (notifying a webhook receiver of the test
//! suite), a JSON webhook with an HMAC signature, a Slack-format webhook; a hook rejecting
//! prod, a dead registry, a receiver that never answers. The pass's clock is passed in.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::engine::{INITIAL, app_registry, kustomization};
use crate::support::alertmanager::Alertmanager;
use crate::support::git::{GitDaemon, bare_repo_at, protect_prod};
use crate::support::receiver::{Received, Receiver};
use crate::support::{HungServer, free_port};
use tagpromoter::alert::Alerting;

use tagpromoter::engine::{Engine, Options};
use tagpromoter::metrics::Metrics;

/// Seconds from the test's start: Alertmanager compares `endsAt` with its own clock, so
/// these passes run at real time.
fn clock() -> impl Fn(i64) -> Timestamp {
    let base = Timestamp::now();
    move |seconds| base + SignedDuration::from_secs(seconds)
}

struct Setup {
    _registry: crate::support::DockerRegistry,
    _daemon: GitDaemon,
    _base: tempfile::TempDir,
    bare: std::path::PathBuf,
    rules: tempfile::TempDir,
    cache: tempfile::TempDir,
}

/// One promotion `app` (prod, behind a hook that refuses `*/prod/*`, stallAfter 1h) and one
/// `ghost` whose registry refuses connections; alerts go to `alerts_yaml`.
async fn setup(alerts_yaml: &str) -> Setup {
    let (registry, image) = app_registry().await;
    let base = tempfile::tempdir().unwrap();
    let overlay = kustomization(&image, "1.0.0");
    let bare = bare_repo_at(
        base.path(),
        "deploys",
        &[
            ("apps/prod/kustomization.yaml", overlay.as_str()),
            ("apps/ghost/values.yaml", "image:\n  tag: 1.0.0\n"),
        ],
        Some(INITIAL),
    );
    protect_prod(&bare);
    let daemon = GitDaemon::start(base.path());
    let dead = format!("127.0.0.1:{}", free_port());
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("rules.yaml"),
        format!(
            "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: '{}deploys.git' }}\n  registries: [{{ host: '{}', insecure: true }}, {{ host: '{dead}', insecure: true }}]\n  interval: 1m\n  alerts:\n{alerts_yaml}\n---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: app }}\nspec:\n  image: {image}\n  environments:\n    - {{ name: prod, policy: {{ semver: '>=1.0.0' }}, stallAfter: 1h, target: {{ kustomize: {{ file: apps/prod/kustomization.yaml }} }} }}\n---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: ghost }}\nspec:\n  image: {dead}/acme/ghost\n  environments:\n    - {{ name: dev, policy: {{ semver: '>=1.0.0' }}, target: {{ helm: {{ file: apps/ghost/values.yaml, tag: image.tag }} }} }}\n",
            daemon.url, registry.addr
        ),
    )
    .unwrap();
    Setup {
        _registry: registry,
        _daemon: daemon,
        _base: base,
        bare,
        rules,
        cache: tempfile::tempdir().unwrap(),
    }
}

impl Setup {
    async fn engine(&self, metrics: std::sync::Arc<Metrics>) -> Engine {
        let rules = tagpromoter::rules::load_dir(self.rules.path()).unwrap();
        let options = Options {
            registry_deadline: Duration::from_secs(5),
            ..Options::default()
        };
        Engine::open_with_metrics(rules, self.cache.path(), options, metrics)
            .await
            .unwrap()
    }
}

/// The notifications of every JSON webhook request so far: (event, alertname, body).
fn events(seen: &[Received]) -> Vec<(String, String, serde_json::Value)> {
    seen.iter()
        .flat_map(|r| {
            r.json()["notifications"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|n| {
            (
                n["event"].as_str().unwrap_or_default().to_string(),
                n["alertname"].as_str().unwrap_or_default().to_string(),
                n,
            )
        })
        .collect()
}

fn has(seen: &[Received], event: &str, name: &str) -> bool {
    events(seen).iter().any(|(e, n, _)| e == event && n == name)
}

/// Alertmanager's webhook payloads so far: (status, alertname).
fn am_alerts(seen: &[Received]) -> Vec<(String, String)> {
    seen.iter()
        .flat_map(|r| r.json()["alerts"].as_array().cloned().unwrap_or_default())
        .map(|a| {
            (
                a["status"].as_str().unwrap_or_default().to_string(),
                a["labels"]["alertname"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_stalls_and_a_dead_registry_raise_alerts_that_resolve() {
    let json = Receiver::start().await;
    let slack = Receiver::start().await;
    let am_hook = Receiver::start().await;
    let am = Alertmanager::start(&format!("{}/am", am_hook.url));
    let secret = tempfile::tempdir().unwrap();
    let secret_file = secret.path().join("hmac");
    std::fs::write(&secret_file, "s3cret-hmac-key\n").unwrap();
    let s = setup(&format!(
        "    alertmanager: {{ url: '{}' }}\n    webhooks:\n      - {{ url: '{}/hook', secretFile: {} }}\n      - {{ url: '{}/slack', format: slack }}\n",
        am.url,
        json.url,
        secret_file.display(),
        slack.url
    ))
    .await;
    let metrics = std::sync::Arc::new(Metrics::new());
    let engine = s.engine(std::sync::Arc::clone(&metrics)).await;
    let settings = engine.rules().settings.clone();
    let mut alerting = Alerting::start(&settings, s.cache.path(), metrics.alerts.clone())
        .unwrap()
        .with_external_url("http://worker.example:9090/");
    let at = clock();

    // Pass 1: the hook refuses prod: PromotionFailed with the hook's message, and (the tag
    // has been eligible since long before the pass) PromotionStalled, in the same pass.
    let report = engine.pass(at(0)).await;
    let sent = alerting.after_pass(&report, &settings);
    let names: Vec<&str> = sent.iter().map(|n| n.alert.name.as_str()).collect();
    assert_eq!(names, ["PromotionFailed", "PromotionStalled"]);
    let seen = json
        .wait_for(10, |s| has(s, "firing", "PromotionFailed"))
        .await;
    let (_, _, failed) = events(&seen)
        .into_iter()
        .find(|(e, n, _)| e == "firing" && n == "PromotionFailed")
        .unwrap();
    assert_eq!(failed["class"], "rejected");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("prod is protected: open a pull request"),
        "{failed}"
    );
    assert_eq!(
        (failed["promotion"].as_str(), failed["to"].as_str()),
        (Some("app"), Some("1.1.0"))
    );
    // The signature verifies with the key, and not with another.
    let request = &seen[0];
    let signature = request.headers["x-tagpromoter-signature"].clone();
    assert_eq!(
        tagpromoter::secret::sign(b"s3cret-hmac-key", &request.body).as_deref(),
        Some(signature.as_str())
    );
    assert_ne!(
        tagpromoter::secret::sign(b"another-key", &request.body).as_deref(),
        Some(signature.as_str())
    );
    let slack_seen = slack.wait_for(10, |s| !s.is_empty()).await;
    let text = slack_seen[0].json()["text"].as_str().unwrap().to_string();
    assert!(
        text.contains("*FIRING* PromotionFailed app/prod 1.0.0 -&gt; 1.1.0 (rejected)"),
        "{text}"
    );
    // The hook's words are shown, not obeyed: no mention, no disguised link (issue 16).
    assert!(
        text.contains("&lt;!channel&gt; &lt;https://evil.example/|details&gt; &amp; more"),
        "{text}"
    );
    assert!(
        !text.contains("<!channel>") && !text.contains("<https://evil"),
        "{text}"
    );
    let am_seen = am_hook
        .wait_for(15, |s| {
            am_alerts(s).contains(&("firing".into(), "PromotionFailed".into()))
        })
        .await;
    let alert = am_seen
        .iter()
        .flat_map(|r| r.json()["alerts"].as_array().cloned().unwrap_or_default())
        .find(|a| a["labels"]["alertname"] == "PromotionFailed")
        .unwrap();
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["labels"]["promotion"], "app");
    assert_eq!(alert["annotations"]["from"], "1.0.0");
    assert_eq!(alert["generatorURL"], "http://worker.example:9090/status");

    // Passes 2 and 3: nothing new about app; the dead registry's third failure fires.
    let report = engine.pass(at(1)).await;
    assert!(
        alerting.after_pass(&report, &settings).is_empty(),
        "no repeated notification"
    );
    let report = engine.pass(at(2)).await;
    let sent = alerting.after_pass(&report, &settings);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].alert.name.as_str(), "RegistryUnavailable");
    assert_eq!(sent[0].alert.class.as_deref(), Some("unavailable"));
    json.wait_for(10, |s| has(s, "firing", "RegistryUnavailable"))
        .await;

    // The hook goes: the bump lands, and both alerts about app resolve.
    std::fs::remove_file(s.bare.join("hooks/pre-receive")).unwrap();
    let report = engine.pass(at(3)).await;
    let sent = alerting.after_pass(&report, &settings);
    let resolved: Vec<&str> = sent
        .iter()
        .filter(|n| n.event == tagpromoter::alert::Event::Resolved)
        .map(|n| n.alert.name.as_str())
        .collect();
    assert_eq!(resolved, ["PromotionFailed", "PromotionStalled"]);
    json.wait_for(10, |s| has(s, "resolved", "PromotionFailed"))
        .await;
    am_hook
        .wait_for(15, |s| {
            am_alerts(s).contains(&("resolved".into(), "PromotionFailed".into()))
        })
        .await;
    assert!(alerting.flush(Duration::from_secs(10)).await);
}

/// A receiver that never answers, and one that refuses connections: passes and
/// promotions go on at full speed.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_or_hanging_sink_does_not_delay_promotions() {
    let hung = HungServer::start();
    let refused = format!("127.0.0.1:{}", free_port());
    let s = setup(&format!(
        "    alertmanager: {{ url: 'http://{}' }}\n    webhooks:\n      - {{ url: 'http://{refused}/hook' }}\n",
        hung.addr
    ))
    .await;
    std::fs::remove_file(s.bare.join("hooks/pre-receive")).unwrap();
    let metrics = std::sync::Arc::new(Metrics::new());
    let engine = s.engine(std::sync::Arc::clone(&metrics)).await;
    let settings = engine.rules().settings.clone();
    let mut alerting = Alerting::start(&settings, s.cache.path(), metrics.alerts.clone()).unwrap();
    let at = clock();
    for minute in 0..3 {
        let report = engine.pass(at(minute)).await;
        let started = std::time::Instant::now();
        alerting.after_pass(&report, &settings);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "queuing alerts took {:?}",
            started.elapsed()
        );
    }
    let log = crate::support::git::git(&s.bare, &["log", "--format=%s", "main"]);
    assert!(
        log.starts_with("promote(prod): app 1.0.0 -> 1.1.0\n"),
        "{log}"
    );
    assert!(
        !alerting.flush(Duration::from_millis(500)).await,
        "nothing could be delivered"
    );
}

/// `once` delivers its alerts before it exits, and a second run does not notify again.
#[tokio::test(flavor = "multi_thread")]
async fn once_delivers_alerts_before_exiting() {
    let json = Receiver::start().await;
    let s = setup(&format!(
        "    webhooks:\n      - {{ url: '{}/hook' }}\n",
        json.url
    ))
    .await;
    let once = || {
        assert_cmd::Command::cargo_bin("tagpromoter")
            .unwrap()
            .arg("--rules")
            .arg(s.rules.path())
            .arg("--cache-dir")
            .arg(s.cache.path())
            .args(["--registry-timeout", "3s", "once"])
            .output()
            .unwrap()
    };
    let out = once();
    assert_eq!(out.status.code(), Some(1));
    let seen = json.seen();
    assert!(
        has(&seen, "firing", "PromotionFailed"),
        "{:?}",
        events(&seen)
    );
    let before = events(&seen).len();
    let out = once();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        events(&json.seen()).len(),
        before,
        "the state in the cache dir keeps it quiet"
    );
}

/// Receiver URLs (a Slack webhook's path is its secret) and HMAC keys never reach the logs,
/// even at the most verbose level, nor the output.
#[tokio::test(flavor = "multi_thread")]
async fn alert_secrets_never_appear_in_logs() {
    let refused = format!("127.0.0.1:{}", free_port());
    let secret = tempfile::tempdir().unwrap();
    let key = secret.path().join("hmac");
    std::fs::write(&key, "HmacSecretKey456\n").unwrap();
    let s = setup(&format!(
        "    webhooks:\n      - {{ url: 'http://{refused}/services/T0001/B0002/SlackSecretToken123', format: slack }}\n      - {{ url: 'http://{refused}/hook?token=QueryToken789', secretFile: {} }}\n",
        key.display()
    ))
    .await;
    let out = assert_cmd::Command::cargo_bin("tagpromoter")
        .unwrap()
        .arg("--rules")
        .arg(s.rules.path())
        .arg("--cache-dir")
        .arg(s.cache.path())
        .args([
            "--registry-timeout",
            "3s",
            "-vv",
            "--log-format",
            "json",
            "once",
        ])
        .env_remove("TAGPROMOTER_LOG")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("alert delivery failed"), "{all}");
    assert!(all.contains(&format!("slack ({refused})")), "{all}");
    for secret in ["SlackSecretToken123", "HmacSecretKey456", "QueryToken789"] {
        assert!(!all.contains(secret), "{secret} leaked:\n{all}");
    }
}

/// A rollback's hold that outlasts `holdAlertAfter` (24h by default) while a newer tag
/// waits raises `PromotionHeld`, with who and why; `release` resolves it.
#[tokio::test(flavor = "multi_thread")]
async fn a_hold_outlasting_hold_alert_after_raises_promotion_held() {
    let s = setup("    holdAlertAfter: 24h").await;
    std::fs::remove_file(s.bare.join("hooks/pre-receive")).unwrap();
    let metrics = std::sync::Arc::new(Metrics::new());
    let engine = s.engine(std::sync::Arc::clone(&metrics)).await;
    let settings = engine.rules().settings.clone();
    let mut alerting = Alerting::start(&settings, s.cache.path(), metrics.alerts.clone()).unwrap();
    let t0: Timestamp = "2026-11-20T10:00:00Z".parse().unwrap();
    let at = |hours: i64| t0 + SignedDuration::from_hours(hours);
    engine.pass(at(0)).await; // prod 1.0.0 -> 1.1.0
    let rollback = tagpromoter::engine::manual::PromoteRequest {
        promotion: "app".into(),
        environment: "prod".into(),
        tag: Some(tagpromoter::image::Tag::new("1.0.0").unwrap()),
        reason: Some("INC-9: 1.1.0 leaks memory".into()),
        force: false,
        hold_for: None,
        actor: "dana".into(),
    };
    engine.promote(&rollback, at(1)).await.unwrap();
    let report = engine.pass(at(2)).await;
    let names = |sent: Vec<tagpromoter::alert::Notification>| {
        sent.iter()
            .filter(|n| n.alert.name.as_str() == "PromotionHeld")
            .map(|n| (n.event, n.alert.error.clone()))
            .collect::<Vec<_>>()
    };
    assert!(
        names(alerting.after_pass(&report, &settings)).is_empty(),
        "not yet 24h"
    );
    let report = engine.pass(at(26)).await;
    let held = names(alerting.after_pass(&report, &settings));
    assert_eq!(
        held,
        [(
            tagpromoter::alert::Event::Firing,
            Some("held by dana: INC-9: 1.1.0 leaks memory".into())
        )]
    );
    engine
        .release("app", "prod", "erin", None, at(27))
        .await
        .unwrap();
    let report = engine.pass(at(28)).await;
    let held = names(alerting.after_pass(&report, &settings));
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].0, tagpromoter::alert::Event::Resolved);
}
