//! Webhooks end to end: the real `docker-registry` notifies a running `tagpromoter run`
//! (interval 1h) of a push and dev's bump lands seconds later, and a forge's push event
//! shows a person's rollback at once; every receiver checks its sender's secret the way that
//! sender signs; a flood makes few passes and drops nothing.
//! Docker Hub, GitHub, Gitea, GitLab, Harbor and Quay cannot run here: their requests are
//! built from their documented payloads and signing schemes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::git::{bare_repo_at, git};
use crate::support::oci::Pusher;
use crate::support::worker::Worker;
use crate::support::{DockerRegistry, HungServer, free_port};
use tagpromoter::rules::ReceiverKind;

const INITIAL: &str = "2026-11-01T00:00:00Z";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A registry notifying a worker about `acme/app`, a GitOps repository `acme/deploys` with
/// dev and staging, and rules with every receiver enabled (each with its own secret).
struct Site {
    registry: DockerRegistry,
    bare: PathBuf,
    worker: Worker,
    image: String,
    secrets: Vec<(ReceiverKind, String)>,
    _hung: Option<HungServer>,
    _dirs: [tempfile::TempDir; 3],
}

impl Site {
    async fn start() -> Self {
        Self::start_with(None).await
    }

    /// With `hung`: one more promotion, whose registry never answers, so that every pass
    /// over all promotions lasts the registry timeout (8 s).
    async fn start_with(hung: Option<HungServer>) -> Self {
        let port = free_port();
        let secret = |k: ReceiverKind| format!("{}-s3cret-7f2e", k.as_str());
        let registry = DockerRegistry::notifying(
            &format!("http://127.0.0.1:{port}/webhooks/distribution"),
            &secret(ReceiverKind::Distribution),
        );
        let r = registry.addr.clone();
        Pusher::new(&r)
            .image("acme/app", Some("1.0.0"), INITIAL, "linux", "amd64")
            .await;
        let image = format!("{r}/acme/app");
        let base = tempfile::tempdir().unwrap();
        let overlay = |tag: &str| {
            format!("# dev\nimages:\n  - name: {image}\n    newTag: {tag} # set by tagpromoter\n")
        };
        let bare = bare_repo_at(
            base.path(),
            "acme/deploys",
            &[
                ("apps/app/dev/kustomization.yaml", &overlay("1.0.0")),
                ("apps/app/staging/kustomization.yaml", &overlay("1.0.0")),
            ],
            Some(INITIAL),
        );
        let rules = tempfile::tempdir().unwrap();
        let mut receivers = String::new();
        let mut secrets = Vec::new();
        for kind in ReceiverKind::ALL {
            let file = rules.path().join(format!("{}.secret", kind.as_str()));
            std::fs::write(&file, format!("{}\n", secret(kind))).unwrap();
            receivers.push_str(&format!(
                "    - {{ type: {}, secretFile: {} }}\n",
                kind.as_str(),
                file.display()
            ));
            secrets.push((kind, secret(kind)));
        }
        std::fs::write(
            rules.path().join("rules.yaml"),
            format!(
                "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: 'file://{}' }}\n  registries: [{{ host: '{r}', insecure: true }}]\n  interval: 1h\n  receivers:\n{receivers}---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: app }}\nspec:\n  image: {image}\n  environments:\n    - {{ name: dev, policy: {{ semver: '>=1.0.0' }}, target: {{ kustomize: {{ file: apps/app/dev/kustomization.yaml }} }} }}\n    - {{ name: staging, from: dev, soak: 1h, policy: {{ semver: '>=1.0.0' }}, target: {{ kustomize: {{ file: apps/app/staging/kustomization.yaml }} }} }}\n",
                bare.display()
            ),
        )
        .unwrap();
        if let Some(h) = &hung {
            std::fs::write(
                rules.path().join("ghost.yaml"),
                format!("apiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: ghost }}\nspec:\n  image: {}/acme/ghost\n  environments:\n    - {{ name: dev, policy: {{ semver: '>=1.0.0' }}, target: {{ kustomize: {{ file: apps/ghost/kustomization.yaml }} }} }}\n", h.addr),
            )
            .unwrap();
        }
        let cache = tempfile::tempdir().unwrap();
        let worker = Worker::start(
            rules.path(),
            cache.path(),
            port,
            &["--registry-timeout", "8s"],
        )
        .await;
        Self {
            registry,
            bare,
            worker,
            image,
            secrets,
            _hung: hung,
            _dirs: [base, rules, cache],
        }
    }

    fn dev(&self) -> String {
        let text = git(
            &self.bare,
            &["show", "main:apps/app/dev/kustomization.yaml"],
        );
        text.split("newTag: ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    }

    fn commits(&self) -> usize {
        git(&self.bare, &["rev-list", "--count", "main"])
            .trim()
            .parse()
            .unwrap()
    }

    async fn push(&self, tag: &str) {
        Pusher::new(&self.registry.addr)
            .image(
                "acme/app",
                Some(tag),
                "2026-11-10T00:00:00Z",
                "linux",
                "amd64",
            )
            .await;
    }

    /// Wait until dev holds `tag`; how long that took.
    async fn wait_for_dev(&self, tag: &str, secs: u64) -> Duration {
        let started = Instant::now();
        while self.dev() != tag {
            assert!(
                started.elapsed() < Duration::from_secs(secs),
                "dev never reached {tag} within {secs}s (interval 1h):\n{}",
                self.worker.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        started.elapsed()
    }

    /// `/status`, once `ready` holds for it (within 30 s).
    async fn status_until(&self, ready: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let body = http()
                .get(format!("{}/status", self.worker.base))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
            if ready(&status) {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "/status never got there: {status}\n{}",
                self.worker.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn secret(&self, kind: ReceiverKind) -> &str {
        &self.secrets.iter().find(|(k, _)| *k == kind).unwrap().1
    }

    async fn post(
        &self,
        kind: &str,
        query: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> (u16, String) {
        let mut req = http()
            .post(format!("{}/webhooks/{kind}{query}", self.worker.base))
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    fn generic(&self, tag: &str) -> (Vec<(&'static str, String)>, Vec<u8>) {
        (
            vec![(
                "Authorization",
                format!("Bearer {}", self.secret(ReceiverKind::Generic)),
            )],
            serde_json::to_vec(&serde_json::json!({ "image": self.image, "tag": tag })).unwrap(),
        )
    }
}

/// The environment `promotion`/`environment` in a `/status` document.
fn env_of(status: &serde_json::Value, promotion: &str, environment: &str) -> serde_json::Value {
    status["environments"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["promotion"] == promotion && e["environment"] == environment)
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_and_gitops_pushes_are_seen_in_seconds_though_the_interval_is_an_hour() {
    let site = Site::start_with(Some(HungServer::start())).await;
    assert_eq!(site.dev(), "1.0.0", "nothing newer at the start");
    site.push("1.1.0").await;
    let took = site.wait_for_dev("1.1.0", 30).await;
    eprintln!("push to commit: {took:?}");
    // A pass over every promotion waits 8 s on the hung registry: the webhook's pass
    // covered only the promotion watching acme/app.
    assert!(
        took < Duration::from_secs(8),
        "the webhook's pass waited on other registries: {took:?}"
    );
    // The report reaches /status a moment after the push (alerts are looked at first).
    let status = site
        .status_until(|s| env_of(s, "app", "dev")["current"] == "1.1.0")
        .await;
    let of = |p: &str| env_of(&status, p, "dev");
    assert_eq!(
        of("ghost")["state"],
        "failing",
        "the others stay on the board as the last full pass saw them: {status}"
    );
    assert!(
        site.worker
            .metric("tagpromoter_webhooks_total{receiver=\"distribution\",result=\"accepted\"}")
            .await
            >= 1.0
    );

    // A hint is only a hint: a tag the registry does not have triggers a pass that
    // writes nothing.
    let commits = site.commits();
    let passes = site.worker.passes().await;
    let (headers, body) = site.generic("9.9.9");
    let (status, answer) = site.post("generic", "", &headers, body).await;
    assert_eq!(status, 202, "{answer}");
    let started = Instant::now();
    while site.worker.passes().await <= passes {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the webhook triggered no pass"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(site.dev(), "1.1.0");
    assert_eq!(
        site.commits(),
        commits,
        "a pass for a tag the registry lacks wrote something"
    );

    // A person rolls dev back by hand; the forge's push event makes the worker see it at
    // once (interval 1h): dev holds, and nothing undoes the rollback.
    let work = tempfile::tempdir().unwrap();
    git(
        work.path(),
        &["clone", "-q", site.bare.to_str().unwrap(), "."],
    );
    let file = work.path().join("apps/app/dev/kustomization.yaml");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("newTag: 1.1.0", "newTag: 1.0.0");
    std::fs::write(&file, text).unwrap();
    git(
        work.path(),
        &["commit", "-qam", "roll dev back: 1.1.0 leaks memory"],
    );
    git(work.path(), &["push", "-q", "origin", "HEAD:main"]);
    let body = serde_json::to_vec(&serde_json::json!({"object_kind": "push", "ref": "refs/heads/main", "project": {"path_with_namespace": "acme/deploys"}})).unwrap();
    let headers = [
        ("X-Gitlab-Event", "Push Hook".to_string()),
        (
            "X-Gitlab-Token",
            site.secret(ReceiverKind::Gitlab).to_string(),
        ),
    ];
    let (status, answer) = site.post("gitlab", "", &headers, body).await;
    assert_eq!(status, 202, "{answer}");
    let status = site
        .status_until(|s| env_of(s, "app", "dev")["state"] == "held")
        .await;
    assert_eq!(
        env_of(&status, "app", "dev")["hold"]["by"],
        "A Person",
        "{status}"
    );
    assert_eq!(site.dev(), "1.0.0", "the rollback stays");

    // An image nobody watches is acknowledged and ignored.
    let (headers, _) = site.generic("1.0.0");
    let other = serde_json::to_vec(
        &serde_json::json!({ "image": "registry.example.com/acme/other", "tag": "2.0.0" }),
    )
    .unwrap();
    let (status, answer) = site.post("generic", "", &headers, other).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("\"pass\":false"), "{answer}");
    site.worker.stop();
}

/// One request per receiver type as its sender builds it: (headers, query, body) signed
/// with `secret`.
fn signed(
    kind: ReceiverKind,
    secret: &str,
    image: &str,
    body_override: Option<Vec<u8>>,
) -> (Vec<(&'static str, String)>, String, Vec<u8>) {
    let (host, path) = image.split_once('/').unwrap();
    let doc = match kind {
        ReceiverKind::Distribution => {
            serde_json::json!({"events": [{"action": "push", "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "repository": path, "tag": "1.0.0"}, "request": {"host": host}}]})
        }
        ReceiverKind::Dockerhub => {
            serde_json::json!({"push_data": {"tag": "1.0.0", "pusher": "acme"}, "repository": {"repo_name": "acme/app", "namespace": "acme", "name": "app"}})
        }
        ReceiverKind::Github => {
            serde_json::json!({"ref": "refs/heads/main", "after": "0000", "repository": {"full_name": "acme/deploys"}})
        }
        ReceiverKind::Gitea => {
            serde_json::json!({"action": "created", "package": {"type": "container", "name": "app", "version": "1.0.0", "owner": {"login": "acme"}}})
        }
        ReceiverKind::Gitlab => {
            serde_json::json!({"object_kind": "push", "ref": "refs/heads/main", "project": {"path_with_namespace": "acme/deploys"}})
        }
        ReceiverKind::Harbor => {
            serde_json::json!({"type": "PUSH_ARTIFACT", "event_data": {"resources": [{"tag": "1.0.0", "resource_url": format!("{image}:1.0.0")}], "repository": {"name": "app", "namespace": "acme", "repo_full_name": path}}})
        }
        ReceiverKind::Quay => {
            serde_json::json!({"repository": path, "namespace": "acme", "name": "app", "docker_url": image, "updated_tags": ["1.0.0"]})
        }
        ReceiverKind::Generic => serde_json::json!({"image": image, "tag": "1.0.0"}),
    };
    let body = body_override.unwrap_or_else(|| serde_json::to_vec(&doc).unwrap());
    let sig = tagpromoter::secret::sign(secret.as_bytes(), &body).unwrap();
    let (headers, query) = match kind {
        ReceiverKind::Distribution | ReceiverKind::Generic => (
            vec![("Authorization", format!("Bearer {secret}"))],
            String::new(),
        ),
        ReceiverKind::Harbor => (vec![("Authorization", secret.to_string())], String::new()),
        ReceiverKind::Github => (
            vec![
                ("X-GitHub-Event", "push".into()),
                ("X-Hub-Signature-256", sig),
            ],
            String::new(),
        ),
        ReceiverKind::Gitea => (
            vec![
                ("X-Gitea-Event", "package".into()),
                ("X-Gitea-Signature", sig["sha256=".len()..].to_string()),
            ],
            String::new(),
        ),
        ReceiverKind::Gitlab => (
            vec![
                ("X-Gitlab-Event", "Push Hook".into()),
                ("X-Gitlab-Token", secret.to_string()),
            ],
            String::new(),
        ),
        ReceiverKind::Dockerhub | ReceiverKind::Quay => (Vec::new(), format!("?token={secret}")),
    };
    (headers, query, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_receiver_checks_its_senders_secret_and_bounds_the_body() {
    let site = Site::start().await;
    for kind in ReceiverKind::ALL {
        let name = kind.as_str();
        let secret = site.secret(kind).to_string();
        // Valid: a pass for what the rules watch (Docker Hub names docker.io/acme/app,
        // which nobody here watches: acknowledged, ignored).
        let (headers, query, body) = signed(kind, &secret, &site.image, None);
        let (status, answer) = site.post(name, &query, &headers, body).await;
        let expected = if kind == ReceiverKind::Dockerhub {
            200
        } else {
            202
        };
        assert_eq!(status, expected, "{name} with its secret: {answer}");
        // Wrong: signed or presented with another secret.
        let (headers, query, body) = signed(kind, "not-the-secret", &site.image, None);
        let (status, answer) = site.post(name, &query, &headers, body).await;
        assert_eq!(status, 401, "{name} with a wrong secret: {answer}");
        // Missing: no signature, token or header at all.
        let (headers, _, body) = signed(kind, &secret, &site.image, None);
        let kept: Vec<(&str, String)> = headers
            .into_iter()
            .filter(|(k, _)| k.starts_with("X-") && k.ends_with("Event"))
            .collect();
        let (status, answer) = site.post(name, "", &kept, body).await;
        assert_eq!(status, 401, "{name} without a secret: {answer}");
        // Oversized: refused before anything else, however well signed.
        let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(1 << 20)).into_bytes();
        let (headers, query, body) = signed(kind, &secret, &site.image, Some(big));
        let (status, answer) = site.post(name, &query, &headers, body).await;
        assert_eq!(status, 413, "{name} with a body over 1 MiB: {answer}");
        let refused = site
            .worker
            .metric(&format!(
                "tagpromoter_webhooks_total{{receiver=\"{name}\",result=\"unauthorized\"}}"
            ))
            .await;
        assert_eq!(refused, 2.0, "{name}: wrong and missing are counted");
    }
    let (status, _) = site.post("nexus", "", &[], b"{}".to_vec()).await;
    assert_eq!(status, 404, "an unknown receiver type");
    let log = site.worker.stop();
    assert!(
        log.contains("webhook refused"),
        "refusals are logged:\n{log}"
    );
    for (kind, secret) in &site.secrets {
        assert!(
            !log.contains(secret.as_str()),
            "the {} secret is in the log",
            kind.as_str()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_webhooks_makes_few_passes_and_drops_no_promotion() {
    let site = std::sync::Arc::new(Site::start().await);
    let passes = site.worker.passes().await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..25 {
        let site = std::sync::Arc::clone(&site);
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..40 {
                if t == 0 && i == 20 {
                    // A real push in the middle of the flood.
                    site.push("1.2.0").await;
                }
                let (headers, body) = site.generic("1.2.0");
                statuses.push(site.post("generic", "", &headers, body).await.0);
                // A steady stream over a few seconds, so that passes run while it flows.
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
            statuses
        }));
    }
    let mut answered = 0;
    for t in tasks {
        for status in t.await.unwrap() {
            assert_eq!(status, 202);
            answered += 1;
        }
    }
    let flood = started.elapsed();
    assert_eq!(answered, 1000);
    site.wait_for_dev("1.2.0", 30).await;
    // Let any pass still due finish, then count.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let made = site.worker.passes().await - passes;
    let bound = flood.as_secs_f64().ceil() + 3.0;
    eprintln!("1000 webhooks in {flood:?}: {made} passes (bound {bound})");
    assert!(
        made >= 1.0 && made <= bound,
        "{made} passes for 1000 webhooks in {flood:?}"
    );
}

/// One slow attacker: a request head (all at once, or a byte at a time) announcing a 1 MiB
/// body, then the body a KiB every 100 ms. How long the worker kept the connection open.
async fn slow_upload(
    (from, addr): (u8, String),
    path: &'static str,
    extra: String,
    head_bytewise: bool,
) -> Duration {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = Instant::now();
    let Ok(mut stream) = crate::hardening::connect_from(from, &addr).await else {
        return started.elapsed();
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n",
        1 << 20
    );
    let (mut read, mut write) = stream.split();
    let writing = async {
        if head_bytewise {
            for b in head.as_bytes() {
                write.write_all(&[*b]).await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        } else {
            write.write_all(head.as_bytes()).await?;
        }
        let chunk = vec![b' '; 1024];
        for _ in 0..1024 {
            write.write_all(&chunk).await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        std::io::Result::Ok(())
    };
    // The worker closing the connection ends the read (an answer, then EOF, or a reset).
    let closed = async {
        let mut sink = Vec::new();
        let _ = read.read_to_end(&mut sink).await;
    };
    tokio::select! {
        _ = writing => {},
        _ = closed => {},
    }
    started.elapsed()
}

/// The review's flood (issue 16): 400 slow 1 MiB uploads from four clients — to an unknown receiver type, to
/// an enabled receiver with a well-formed but wrong signature, and with the head sent a byte
/// at a time — against the real worker process. It stays small, answers `/healthz` within a
/// second throughout, and closes every such connection within its time limits.
#[tokio::test(flavor = "multi_thread")]
async fn four_hundred_slow_uploads_neither_exhaust_nor_block_the_worker() {
    let site = Site::start().await;
    let addr = site.worker.base.trim_start_matches("http://").to_string();
    let (before, _) = site.worker.memory_kib();
    let fake = format!(
        "X-GitHub-Event: push\r\nX-Hub-Signature-256: sha256={}\r\n",
        "ab".repeat(32)
    );
    let mut attackers = Vec::new();
    for i in 0..400 {
        let (path, extra, bytewise) = match i % 4 {
            0 | 1 => ("/webhooks/nope", String::new(), false),
            2 => ("/webhooks/github", fake.clone(), false),
            _ => ("/webhooks/github", fake.clone(), true),
        };
        // (From four addresses: no one client may hold more than 128 connections.)
        attackers.push(tokio::spawn(slow_upload(
            (1 + (i % 4) as u8, addr.clone()),
            path,
            extra,
            bytewise,
        )));
    }
    // /healthz within a second, every quarter second, while the flood lasts.
    // The tests of this binary run at once on two cores: a probe may lose its second to
    // them now and then, so a single miss is tolerated, never two in a row (a blocked
    // worker misses every probe).
    let probe = http();
    let mut slowest = Duration::ZERO;
    let (mut probes, mut misses, mut in_a_row) = (0, 0, 0);
    let watching = Instant::now();
    while watching.elapsed() < Duration::from_secs(20) {
        let asked = Instant::now();
        let answer = tokio::time::timeout(
            Duration::from_secs(1),
            probe.get(format!("{}/healthz", site.worker.base)).send(),
        )
        .await;
        probes += 1;
        if matches!(answer, Ok(Ok(ref r)) if r.status() == 200) {
            in_a_row = 0;
            slowest = slowest.max(asked.elapsed());
        } else {
            misses += 1;
            in_a_row += 1;
        }
        assert!(
            in_a_row < 2 && misses <= 3,
            "/healthz did not answer within a second {misses} times of {probes}, {:?} into the flood",
            watching.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The longest each kind of attacker was kept: unknown type, fake signature, slow head.
    let mut open_longest = [Duration::ZERO; 3];
    for (i, a) in attackers.into_iter().enumerate() {
        let kind = [0, 0, 1, 2][i % 4];
        open_longest[kind] = open_longest[kind].max(a.await.unwrap());
    }
    let (after, peak) = site.worker.memory_kib();
    eprintln!(
        "worker RSS before {before} KiB, after {after} KiB, peak {peak} KiB; /healthz: {probes} probes, {misses} over a second, slowest answer {slowest:?}; longest attacker connection {open_longest:?}"
    );
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB under the flood");
    assert!(
        after < before + 16 * 1024,
        "memory did not return after the flood: {before} -> {after} KiB"
    );
    // Refused from its head at once; its body waited for and read within 10 s each; its
    // head cut after 5 s.
    let [unknown, signed_body, slow_head] = open_longest;
    assert!(
        unknown < Duration::from_secs(2),
        "unknown type kept {unknown:?}"
    );
    assert!(
        signed_body < Duration::from_secs(22),
        "a fake signature's body kept {signed_body:?}"
    );
    assert!(
        slow_head < Duration::from_secs(7),
        "a slow head kept {slow_head:?}"
    );
    // Still a working receiver afterwards.
    let (headers, query, body) = signed(
        ReceiverKind::Github,
        site.secret(ReceiverKind::Github),
        &site.image,
        None,
    );
    let (status, answer) = site.post("github", &query, &headers, body).await;
    assert_eq!(status, 202, "{answer}");
}

/// A captured, validly signed delivery sent again (issue 16): GitHub, Gitea and GitLab by
/// their delivery headers, distribution by its events' ids. The first asks for a pass; the
/// copy is answered 200 "seen", counted, and asks for nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_delivery_is_seen_and_makes_no_pass() {
    let site = Site::start().await;
    for (kind, header) in [
        (ReceiverKind::Github, Some("X-GitHub-Delivery")),
        (ReceiverKind::Gitea, Some("X-Gitea-Delivery")),
        (ReceiverKind::Gitlab, Some("X-Gitlab-Event-UUID")),
        (ReceiverKind::Distribution, None),
    ] {
        let name = kind.as_str();
        let body = (kind == ReceiverKind::Distribution).then(|| {
            let (host, path) = site.image.split_once('/').unwrap();
            serde_json::to_vec(&serde_json::json!({"events": [{"id": format!("evt-{name}"), "action": "push", "target": {"repository": path, "tag": "1.0.0"}, "request": {"host": host}}]})).unwrap()
        });
        let (mut headers, query, body) = signed(kind, site.secret(kind), &site.image, body);
        if let Some(h) = header {
            headers.push((h, format!("delivery-{name}-1")));
        }
        let (status, answer) = site.post(name, &query, &headers, body.clone()).await;
        assert_eq!(status, 202, "{name}, first delivery: {answer}");
        let passes = site.worker.passes().await;
        let (status, answer) = site.post(name, &query, &headers, body.clone()).await;
        assert_eq!(status, 200, "{name}, replayed: {answer}");
        assert!(answer.contains("\"seen\""), "{answer}");
        tokio::time::sleep(Duration::from_secs(2)).await;
        // The first delivery's pass may finish meanwhile; the replay asks for none after it.
        let settled = site.worker.passes().await;
        assert!(
            settled <= passes + 1.0,
            "{name}: {settled} passes after {passes}"
        );
        let replayed = site
            .worker
            .metric(&format!(
                "tagpromoter_webhooks_total{{receiver=\"{name}\",result=\"replayed\"}}"
            ))
            .await;
        assert_eq!(replayed, 1.0, "{name}: the replay is counted");
        // Another delivery with the same content is not a replay.
        if let Some(h) = header {
            let (mut headers, query, body) = signed(kind, site.secret(kind), &site.image, None);
            headers.push((h, format!("delivery-{name}-2")));
            let (status, answer) = site.post(name, &query, &headers, body).await;
            assert_eq!(status, 202, "{name}, a new delivery: {answer}");
        }
    }
}
