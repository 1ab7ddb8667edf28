//! The worker's HTTP server during `tagpromoter run`: `/metrics` (checked by Debian's
//! `promtool`), `/healthz`, `/readyz` (unready when passes stop finishing), `/status`.

use std::time::{Duration, Instant};

use crate::engine::Fleet;
use crate::support::{free_port, require};

async fn get(url: &str) -> (u16, String) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    match client.get(url).send().await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

async fn wait_until(secs: u64, url: &str, status: u16) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(secs) {
        if get(url).await.0 == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{url} never answered {status} within {secs}s");
}

/// The fleet's hung registry makes each pass last the registry timeout (8s) while the
/// interval is 2s: ready after a pass, unready once three intervals pass without one.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_health_readiness_and_status_during_run() {
    let fleet = Fleet::start().await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = crate::support::Process::spawn(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("tagpromoter"))
            .arg("--rules")
            .arg(fleet.rules.path())
            .arg("--cache-dir")
            .arg(fleet.cache.path())
            .args(["--registry-timeout", "8s", "--log-format", "json", "run"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    wait_until(10, &format!("{base}/healthz"), 200).await;
    assert_eq!(
        get(&format!("{base}/readyz")).await.0,
        503,
        "not ready before a pass"
    );
    wait_until(30, &format!("{base}/readyz"), 200).await;

    let (status, metrics) = get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    for series in [
        "tagpromoter_pass_duration_seconds_bucket",
        "tagpromoter_passes_total{result=\"failed\"} 1",
        "tagpromoter_promotions_total{result=\"landed\"} 2",
        "tagpromoter_environments_behind",
        "tagpromoter_environments_stalled",
        "tagpromoter_environments_not_deployed{state=\"unhealthy\"} 0",
        "tagpromoter_last_success_timestamp_seconds{promotion=\"billing\",environment=\"prod\"}",
        "tagpromoter_last_pass_timestamp_seconds",
        "tagpromoter_git_pushes_total{repository=\"default\",result=\"ok\"} 1",
        "tagpromoter_registry_request_duration_seconds_bucket",
    ] {
        assert!(
            metrics.contains(series),
            "{series} missing from:\n{metrics}"
        );
    }
    let registry = &fleet.registry.addr;
    assert!(
        metrics.contains(&format!(
            "tagpromoter_registry_requests_total{{host=\"{registry}\",status=\"200\"}}"
        )),
        "{metrics}"
    );
    let promtool = require("promtool");
    let mut check = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let (status, body) = get(&format!("{base}/status")).await;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["environments"].as_array().unwrap().len(), 6);

    // The next pass hangs on the registry for 8s: after three intervals (6s) without a
    // finished pass the worker is unready, and the server answers all along.
    wait_until(20, &format!("{base}/readyz"), 503).await;
    let started = Instant::now();
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "healthz took {:?}",
        started.elapsed()
    );

    crate::support::sigterm(&child);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

/// Issue 16: `/status` and the board are read-only and unauthenticated, so they never show
/// a secret file's path (the setting that names it stays), and with `--listen-board` they
/// live on their own address: `--listen` then serves only probes, metrics and webhooks.
#[tokio::test(flavor = "multi_thread")]
async fn the_board_and_status_show_no_secret_paths_and_can_live_apart() {
    use crate::support::git::bare_repo_at;
    use crate::support::oci::Pusher;
    use crate::support::{Auth, DockerRegistry};
    let registry = DockerRegistry::start(Auth::None);
    Pusher::new(&registry.addr)
        .image(
            "acme/app",
            Some("1.0.0"),
            crate::engine::INITIAL,
            "linux",
            "amd64",
        )
        .await;
    let image = format!("{}/acme/app", registry.addr);
    let base = tempfile::tempdir().unwrap();
    let bare = bare_repo_at(
        base.path(),
        "deploys",
        &[(
            "apps/dev/kustomization.yaml",
            crate::engine::kustomization(&image, "1.0.0").as_str(),
        )],
        Some(crate::engine::INITIAL),
    );
    let rules = tempfile::tempdir().unwrap();
    Pusher::new(&registry.addr)
        .image(
            "acme/app",
            Some("1.1.0"),
            crate::engine::INITIAL,
            "linux",
            "amd64",
        )
        .await;
    let secret = rules.path().join("vault-mount-Zq9").join("forge-token");
    std::fs::write(
        rules.path().join("rules.yaml"),
        format!(
            "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: 'file://{}', forge: {{ kind: github, apiUrl: 'http://127.0.0.1:1', tokenFile: {}, project: acme/deploys }} }}\n  registries: [{{ host: '{}', insecure: true }}]\n  interval: 1h\n---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: app }}\nspec:\n  image: {image}\n  environments:\n    - {{ name: dev, write: pull-request, policy: {{ semver: '>=1.0.0' }}, target: {{ kustomize: {{ file: apps/dev/kustomization.yaml }} }} }}\n",
            bare.display(),
            secret.display(),
            registry.addr
        ),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (port, board_port) = (free_port(), free_port());
    let (service, board) = (
        format!("http://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{board_port}"),
    );
    let _child = crate::support::Process::spawn(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("tagpromoter"))
            .arg("--rules")
            .arg(rules.path())
            .arg("--cache-dir")
            .arg(cache.path())
            .args(["run", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--listen-board", &format!("127.0.0.1:{board_port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    wait_until(30, &format!("{service}/readyz"), 200).await;
    for path in ["/", "/status"] {
        assert_eq!(
            get(&format!("{service}{path}")).await.0,
            404,
            "{path} on --listen"
        );
    }
    for path in ["/metrics", "/healthz", "/webhooks/github"] {
        assert_eq!(
            get(&format!("{board}{path}")).await.0,
            404,
            "{path} on --listen-board"
        );
    }
    for path in ["/status", "/"] {
        let (status, text) = get(&format!("{board}{path}")).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            text.contains("tokenFile") && text.contains("[secret file]"),
            "{path} still says what is wrong: {text}"
        );
        assert!(
            !text.contains("vault-mount-Zq9"),
            "{path} shows a secret path: {text}"
        );
    }
}
