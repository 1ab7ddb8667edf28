//! Hardening, round two (issue 29): what anyone who can edit a file the bot reads, or reach
//! its ports, can make the worker spend. Each attack runs against the real binary, its own
//! peak memory read from `/proc`; the worker's pod is limited to 256 MiB and must stay under
//! 128 MiB through all of them.

use std::time::{Duration, Instant};

use crate::engine::{INITIAL, app_registry, kustomization};
use crate::support::git::bare_repo_at;
use crate::support::worker::Worker;
use crate::support::{DockerRegistry, free_port, run_watching_memory};

/// The most the worker may use through any of these attacks, in KiB.
const PEAK_KIB: u64 = 128 * 1024;

/// A target file of 100 MiB of blank lines (a few hundred KiB in the repository, as Git
/// compresses it): its size is read from the object's header and the file refused, naming
/// it and its size, never inflated — the environment fails alone, the other one is bumped.
#[tokio::test(flavor = "multi_thread")]
async fn a_huge_target_file_is_refused_unread_and_the_others_go_on() {
    let (_registry, image) = app_registry().await;
    let base = tempfile::tempdir().unwrap();
    let huge = format!(
        "{}{}",
        kustomization(&image, "1.0.0"),
        "\n".repeat(100 << 20)
    );
    let bare = bare_repo_at(
        base.path(),
        "gitops",
        &[
            ("deploy/dev/kustomization.yaml", &huge),
            (
                "deploy/prod/kustomization.yaml",
                &kustomization(&image, "1.0.0"),
            ),
        ],
        Some(INITIAL),
    );
    drop(huge);
    let rules = tempfile::tempdir().unwrap();
    let registry = image.split('/').next().unwrap();
    std::fs::write(
        rules.path().join("rules.yaml"),
        format!(
            "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: 'file://{}' }}\n  registries: [{{ host: '{registry}', insecure: true }}]\n---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: app }}\nspec:\n  image: {image}\n  environments:\n    - {{ name: dev, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: deploy/dev/kustomization.yaml }} }} }}\n    - {{ name: prod, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: deploy/prod/kustomization.yaml }} }} }}\n",
            bare.display()
        ),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (out, peak) = run_watching_memory(&[
        "--rules".as_ref(),
        rules.path().as_os_str(),
        "--cache-dir".as_ref(),
        cache.path().as_os_str(),
        "once".as_ref(),
    ])
    .await;
    eprintln!("once over a 100 MiB target: peak RSS {peak} KiB\n{out}");
    assert!(
        out.contains("deploy/dev/kustomization.yaml")
            && out.contains("100.0 MiB, over the 8.0 MiB a file may be"),
        "{out}"
    );
    let prod = crate::support::git::git(&bare, &["show", "main:deploy/prod/kustomization.yaml"]);
    assert!(prod.contains("newTag: 1.1.0"), "prod went on: {prod}");
    assert!(peak < PEAK_KIB, "once peaked at {peak} KiB");
}

/// A directory on a target's path with 700,000 entries (one shared blob, a 25 MiB tree
/// object): refused from its header with its size, never decoded.
#[tokio::test(flavor = "multi_thread")]
async fn a_directory_with_absurdly_many_entries_is_refused_unread() {
    let (_registry, image) = app_registry().await;
    let base = tempfile::tempdir().unwrap();
    let bare = bare_repo_at(
        base.path(),
        "gitops",
        &[(
            "deploy/dev/kustomization.yaml",
            &kustomization(&image, "1.0.0"),
        )],
        Some(INITIAL),
    );
    // deploy/ gains 700,000 more entries, written as objects directly.
    let git = |args: &[&str], input: Option<&str>| {
        let mut child = std::process::Command::new("git")
            .args(args)
            .current_dir(&bare)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = input {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "git {args:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let deploy = git(&["rev-parse", "main:deploy"], None);
    let listed = git(&["ls-tree", &deploy], None);
    let blob = git(&["hash-object", "-w", "--stdin"], Some("x\n"));
    let mut entries = format!("{listed}\n");
    for i in 0..700_000 {
        entries.push_str(&format!("100644 blob {blob}\tf{i:07}\n"));
    }
    let big = git(&["mktree", "--missing"], Some(&entries));
    let root = git(&["ls-tree", "main"], None).replace(&deploy, &big);
    let root = git(&["mktree"], Some(&format!("{root}\n")));
    let parent = git(&["rev-parse", "main"], None);
    let commit = git(
        &["commit-tree", &root, "-p", &parent, "-m", "many files"],
        Some(""),
    );
    git(&["update-ref", "refs/heads/main", &commit], None);
    let rules = tempfile::tempdir().unwrap();
    let registry = image.split('/').next().unwrap();
    std::fs::write(
        rules.path().join("rules.yaml"),
        format!(
            "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: 'file://{}' }}\n  registries: [{{ host: '{registry}', insecure: true }}]\n---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: app }}\nspec:\n  image: {image}\n  environments:\n    - {{ name: dev, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: deploy/dev/kustomization.yaml }} }} }}\n",
            bare.display()
        ),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (out, peak) = run_watching_memory(&[
        "--rules".as_ref(),
        rules.path().as_os_str(),
        "--cache-dir".as_ref(),
        cache.path().as_os_str(),
        "once".as_ref(),
    ])
    .await;
    eprintln!("once over a 700,000-entry directory: peak RSS {peak} KiB\n{out}");
    assert!(
        out.contains("reading deploy: it is")
            && out.contains("over the 16.0 MiB a directory may be"),
        "{out}"
    );
    assert!(peak < PEAK_KIB, "once peaked at {peak} KiB");
}

/// A worker over one promotion, serving its probes on a port of their own too.
struct Served {
    worker: Worker,
    /// `127.0.0.1:PORT` of --listen (webhooks).
    main: String,
    /// `http://127.0.0.1:PORT` of --listen-probes.
    probes: String,
    _registry: DockerRegistry,
    _dirs: [tempfile::TempDir; 3],
}

impl Served {
    async fn start() -> Self {
        let (registry, image) = app_registry().await;
        let base = tempfile::tempdir().unwrap();
        let bare = bare_repo_at(
            base.path(),
            "gitops",
            &[(
                "deploy/dev/kustomization.yaml",
                &kustomization(&image, "1.0.0"),
            )],
            Some(INITIAL),
        );
        let rules = tempfile::tempdir().unwrap();
        let host = image.split('/').next().unwrap();
        std::fs::write(
            rules.path().join("rules.yaml"),
            format!(
                "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: 'file://{}' }}\n  registries: [{{ host: '{host}', insecure: true }}]\n---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: app }}\nspec:\n  image: {image}\n  environments:\n    - {{ name: dev, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: deploy/dev/kustomization.yaml }} }} }}\n",
                bare.display()
            ),
        )
        .unwrap();
        let cache = tempfile::tempdir().unwrap();
        let (port, probes) = (free_port(), free_port());
        let worker = Worker::start_with(
            rules.path(),
            cache.path(),
            port,
            &[],
            &["--listen-probes", &format!("127.0.0.1:{probes}")],
        )
        .await;
        Self {
            worker,
            main: format!("127.0.0.1:{port}"),
            probes: format!("http://127.0.0.1:{probes}"),
            _registry: registry,
            _dirs: [base, rules, cache],
        }
    }
}

/// A connection to `addr` from the loopback address `127.0.0.<from>` (a client of its own).
pub async fn connect_from(from: u8, addr: &str) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(format!("127.0.0.{from}:0").parse().unwrap())?;
    socket.connect(addr.parse().unwrap()).await
}

/// `GET path` on `addr` from `127.0.0.<from>`: the status, if answered within a second.
async fn get_from(from: u8, addr: &str, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = async {
        let mut stream = connect_from(from, addr).await.ok()?;
        let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        let line = String::from_utf8_lossy(&answer);
        line.split_whitespace().nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(1), ask)
        .await
        .ok()
        .flatten()
}

/// One client (`127.0.0.1`) holding 600 connections to `main` for `lasting`, reopening each
/// as the worker closes it; the tasks, to await.
fn hold_connections(main: &str, lasting: Duration) -> Vec<tokio::task::JoinHandle<()>> {
    let flooding = Instant::now();
    (0..600)
        .map(|_| {
            let main = main.to_string();
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                while flooding.elapsed() < lasting {
                    let Ok(mut stream) = connect_from(1, &main).await else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    let mut sink = [0u8; 64];
                    let _ = tokio::time::timeout(
                        lasting.saturating_sub(flooding.elapsed()),
                        stream.read(&mut sink),
                    )
                    .await;
                }
            })
        })
        .collect()
}

/// 500 connections to `main` from eight addresses, each sending a 400 KiB header line:
/// how many got each answer (its status, or `closed`).
async fn huge_heads(main: &str) -> std::collections::BTreeMap<String, usize> {
    let attackers: Vec<_> = (0..500u32)
        .map(|i| {
            let main = main.to_string();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut stream = connect_from(1 + (i % 8) as u8, &main).await.ok()?;
                let head = format!(
                    "POST /webhooks/github HTTP/1.1\r\nHost: {main}\r\nX-Padding: {}\r\n\r\n",
                    "a".repeat(400 << 10)
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let mut answer = Vec::new();
                let _ =
                    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
                        .await;
                let answer = String::from_utf8_lossy(&answer).into_owned();
                answer.split_whitespace().nth(1).map(str::to_string)
            })
        })
        .collect();
    let mut statuses = std::collections::BTreeMap::new();
    for a in attackers {
        let status = a.await.ok().flatten().unwrap_or_else(|| "closed".into());
        *statuses.entry(status).or_insert(0) += 1;
    }
    statuses
}

/// One client holds every connection it can on the webhook port (600, reopening each as
/// the head timeout closes it), for 12 s: the probes on --listen-probes answer throughout,
/// another client still gets an answer on the webhook port, and the log says so in a few
/// lines (not one per refused connection).
#[tokio::test(flavor = "multi_thread")]
async fn one_client_holding_the_webhook_port_fails_no_probe_and_floods_no_log() {
    let served = Served::start().await;
    let main = served.main.clone();
    let flooding = Instant::now();
    let holders = hold_connections(&main, Duration::from_secs(12));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let probe = reqwest::Client::new();
    let (mut probes, mut misses, mut others) = (0, 0, 0);
    while flooding.elapsed() < Duration::from_secs(11) {
        let answer = tokio::time::timeout(
            Duration::from_secs(1),
            probe.get(format!("{}/healthz", served.probes)).send(),
        )
        .await;
        probes += 1;
        if !matches!(answer, Ok(Ok(ref r)) if r.status() == 200) {
            misses += 1;
        }
        if get_from(2, &main, "/healthz").await == Some(200) {
            others += 1;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for h in holders {
        let _ = h.await;
    }
    let log = served.worker.stop();
    let warnings = log.matches("too many connections").count();
    eprintln!(
        "{probes} probes, {misses} missed; another client answered {others} times; {warnings} warning lines"
    );
    // (The tests of this binary run at once on two cores: one miss is tolerated.)
    assert!(misses <= 1, "{misses} of {probes} probes missed");
    assert!(
        others * 10 >= probes * 9,
        "another client answered {others} of {probes}"
    );
    assert!(
        (1..=3).contains(&warnings),
        "{warnings} lines about refused connections:\n{}",
        &log[..log.len().min(4000)]
    );
}

/// 500 connections, from eight addresses, each sending a 400 KiB header line: each is
/// answered `431` once its head passes 32 KiB, and the worker stays small.
#[tokio::test(flavor = "multi_thread")]
async fn huge_request_heads_are_refused_with_431_and_cost_little() {
    let served = Served::start().await;
    let statuses = huge_heads(&served.main).await;
    let (_, peak) = served.worker.memory_kib();
    eprintln!("answers {statuses:?}; worker peak RSS {peak} KiB");
    assert!(
        statuses.get("431").copied().unwrap_or(0) >= 450,
        "answers {statuses:?}"
    );
    assert!(peak < PEAK_KIB, "peak RSS {peak} KiB");
}

/// An Argo CD Application named `name`, synced to `revision` and healthy, carrying `pad`
/// bytes of status (a large Application's resource list).
fn application(name: &str, revision: &str, pad: usize) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": { "name": name, "namespace": "argocd", "generation": 1 },
        "spec": { "project": "default" },
        "status": {
            "sync": { "status": "Synced", "revision": revision },
            "health": { "status": "Healthy" },
            "operationState": { "phase": "Succeeded", "finishedAt": "2026-11-20T09:00:00Z", "syncResult": { "revision": revision } },
            "history": [ { "id": 1, "revision": revision, "deployedAt": "2026-11-20T09:00:00Z" } ],
            "conditions": [ { "type": "Padding", "message": "x".repeat(pad) } ]
        }
    })
}

/// 1,500 Applications of 100 KiB in Argo CD's namespace (150 MiB), and the one a promotion
/// verifies: a pass reads that one by name, not the namespace, and stays small. A single
/// Application over 4 MiB is refused unread past that, and its environment says why.
#[tokio::test(flavor = "multi_thread")]
async fn verifying_one_application_reads_only_it_and_a_huge_one_is_refused() {
    let (_registry, image) = app_registry().await;
    let base = tempfile::tempdir().unwrap();
    let bare = bare_repo_at(
        base.path(),
        "gitops",
        &[
            (
                "deploy/dev/kustomization.yaml",
                &kustomization(&image, "1.0.0"),
            ),
            (
                "deploy/qa/kustomization.yaml",
                &kustomization(&image, "1.0.0"),
            ),
        ],
        Some(INITIAL),
    );
    let first = crate::support::git::git(&bare, &["rev-parse", "main"])
        .trim()
        .to_string();
    let api = crate::support::kube_api::KubeApi::start().await;
    api.grant("tagpromoter", "applications", "argocd");
    for i in 0..1_500 {
        api.put(
            "applications",
            application(&format!("other-{i}"), &first, 100 << 10),
        );
    }
    api.put("applications", application("app-dev", &first, 1 << 10));
    api.put("applications", application("app-qa", &first, 10 << 20));
    let (kubeconfig, token) = api.kubeconfig_with_token("tagpromoter");
    let rules = tempfile::tempdir().unwrap();
    let host = image.split('/').next().unwrap();
    std::fs::write(
        rules.path().join("rules.yaml"),
        format!(
            "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: 'file://{}' }}\n  registries: [{{ host: '{host}', insecure: true }}]\n  clusters: [{{ name: dev, kubeconfig: '{}' }}]\n---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: app }}\nspec:\n  image: {image}\n  environments:\n    - {{ name: dev, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: deploy/dev/kustomization.yaml }} }}, verify: {{ argocd: {{ application: app-dev }}, cluster: dev }} }}\n    - {{ name: qa, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: deploy/qa/kustomization.yaml }} }}, verify: {{ argocd: {{ application: app-qa }}, cluster: dev }} }}\n",
            bare.display(),
            kubeconfig.display()
        ),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let served_before = api.served();
    let (out, peak) = run_watching_memory(&[
        "--rules".as_ref(),
        rules.path().as_os_str(),
        "--cache-dir".as_ref(),
        cache.path().as_os_str(),
        "status".as_ref(),
    ])
    .await;
    eprintln!("status over 1,500 Applications: peak RSS {peak} KiB\n{out}");
    let mut requests = api.requests();
    requests.sort();
    assert_eq!(
        requests,
        vec![
            "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/app-dev",
            "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/app-qa",
        ],
        "({} served before)",
        served_before
    );
    assert!(
        out.contains("larger than the 4 MiB an object may be"),
        "{out}"
    );
    assert!(!out.contains(&token));
    assert!(peak < PEAK_KIB, "status peaked at {peak} KiB");
}

/// A server that refuses everything, echoing back the credentials it was sent (decoded,
/// where they came as Basic auth) in the error message, as an API's error text may: for
/// the registry, the forge, git and the Kubernetes API alike. Returns its `127.0.0.1:PORT`
/// and the credentials it saw.
async fn echoing_server() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use base64::Engine as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let saw = std::sync::Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let saw = std::sync::Arc::clone(&saw);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 65536 {
                    match stream.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let mut said = Vec::new();
                for line in head.lines() {
                    let Some((name, value)) = line.split_once(':') else {
                        continue;
                    };
                    if !name.eq_ignore_ascii_case("authorization") {
                        continue;
                    }
                    let value = value.trim().to_string();
                    if let Some(basic) = value.strip_prefix("Basic ")
                        && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic)
                    {
                        said.push(String::from_utf8_lossy(&decoded).into_owned());
                    }
                    said.push(value);
                }
                saw.lock().unwrap().extend(said.iter().cloned());
                // (A line of its own, and a terminal escape, to forge output.)
                let echo = format!(
                    "denied for {}\nFORGED-LINE \u{1b}[31mred",
                    said.join(" and ")
                );
                let body = serde_json::json!({
                    "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 403,
                    "reason": "Forbidden", "message": echo,
                    "errors": [ { "code": "DENIED", "message": echo } ]
                })
                .to_string();
                // Asked without credentials, it asks for them (as a registry does).
                let status = match said.is_empty() {
                    true => "401 Unauthorized",
                    false => "403 Forbidden",
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nWww-Authenticate: Basic realm=\"echo\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (addr, seen)
}

/// Issue 29: a known secret in every credential source — a registry password, a forge
/// token, a git password, a kubeconfig's token and an exec plugin's token — each sent to a
/// server that echoes it back in its error message. None of them appears on any surface:
/// the worker's log, `/status`, the board, the alerts it sends, and `once`'s output; the
/// echoes are there, redacted.
#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_any_surface_even_when_a_server_echoes_it() {
    use std::os::unix::fs::PermissionsExt;
    let (_registry, image) = app_registry().await;
    let (echo, seen) = echoing_server().await;
    let receiver = crate::support::receiver::Receiver::start().await;
    let base = tempfile::tempdir().unwrap();
    let bare = bare_repo_at(
        base.path(),
        "gitops",
        &[
            (
                "deploy/a/kustomization.yaml",
                &kustomization(&image, "1.0.0"),
            ),
            (
                "deploy/b/kustomization.yaml",
                &kustomization(&format!("{echo}/acme/b"), "1.0.0"),
            ),
        ],
        Some(INITIAL),
    );
    let secrets = base.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    let values = [
        ("registry", "REGISTRY-SECRET-0a1b2c"),
        ("forge", "FORGE-SECRET-3d4e5f"),
        ("git", "GIT-SECRET-6a7b8c"),
        ("kube", "KUBE-SECRET-9d0e1f"),
        ("plugin", "PLUGIN-SECRET-2a3b4c"),
    ];
    for (name, value) in values {
        std::fs::write(secrets.join(name), format!("{value}\n")).unwrap();
    }
    let kubeconfig = |user: &str, credentials: &str| {
        let file = secrets.join(format!("{user}.kubeconfig"));
        std::fs::write(&file, format!("apiVersion: v1\nkind: Config\nclusters:\n- name: echo\n  cluster:\n    server: http://{echo}\nusers:\n- name: {user}\n  user:\n    {credentials}\ncontexts:\n- name: {user}@echo\n  context:\n    cluster: echo\n    user: {user}\ncurrent-context: {user}@echo\n")).unwrap();
        file
    };
    let by_token = kubeconfig("bot", "token: KUBE-SECRET-9d0e1f");
    let plugin = secrets.join("plugin.sh");
    std::fs::write(&plugin, "#!/bin/sh\nprintf '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"PLUGIN-SECRET-2a3b4c\"}}'\n").unwrap();
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let by_plugin = kubeconfig(
        "plugged",
        &format!(
            "exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}",
            plugin.display()
        ),
    );
    let host = image.split('/').next().unwrap();
    let s = secrets.display();
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("rules.yaml"),
        format!(
            "apiVersion: tagpromoter.io/v1alpha1
kind: Settings
spec:
  git:
    url: 'file://{bare}'
    forge: {{ kind: github, apiUrl: 'http://{echo}', tokenFile: {s}/forge, project: acme/gitops }}
  repositories:
    - {{ name: echoed, url: 'http://{echo}/acme/gitops.git', auth: {{ username: bot, passwordFile: {s}/git }} }}
  registries:
    - {{ host: '{host}', insecure: true }}
    - {{ host: '{echo}', insecure: true, username: bot, passwordFile: {s}/registry }}
  clusters:
    - {{ name: tokened, kubeconfig: '{}' }}
    - {{ name: plugged, kubeconfig: '{}', allowExecPlugins: true }}
  alerts:
    webhooks: [{{ url: '{}/hook' }}]
---
apiVersion: tagpromoter.io/v1alpha1
kind: Promotion
metadata: {{ name: a }}
spec:
  image: {image}
  environments:
    - {{ name: dev, write: pull-request, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: deploy/a/kustomization.yaml }} }}, verify: {{ argocd: {{ application: a }}, cluster: tokened }} }}
    - {{ name: qa, repository: echoed, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: deploy/a/kustomization.yaml }} }}, verify: {{ argocd: {{ application: a }}, cluster: plugged }} }}
---
apiVersion: tagpromoter.io/v1alpha1
kind: Promotion
metadata: {{ name: b }}
spec:
  image: {echo}/acme/b
  environments:
    - {{ name: dev, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: deploy/b/kustomization.yaml }} }} }}
",
            by_token.display(),
            by_plugin.display(),
            receiver.url,
            bare = bare.display(),
        ),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let worker = Worker::start(rules.path(), cache.path(), free_port(), &[]).await;
    // The alerts of the first pass delivered.
    let started = Instant::now();
    while receiver.seen().is_empty() && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let http = reqwest::Client::new();
    let status = http
        .get(format!("{}/status", worker.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let board = http
        .get(format!("{}/", worker.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let alerts: String = receiver
        .seen()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    let log = worker.stop();
    let once_cache = tempfile::tempdir().unwrap();
    let (once, _) = run_watching_memory(&[
        "--rules".as_ref(),
        rules.path().as_os_str(),
        "--cache-dir".as_ref(),
        once_cache.path().as_os_str(),
        "-v".as_ref(),
        "once".as_ref(),
    ])
    .await;
    let status_cache = tempfile::tempdir().unwrap();
    let (status_text, _) = run_watching_memory(&[
        "--rules".as_ref(),
        rules.path().as_os_str(),
        "--cache-dir".as_ref(),
        status_cache.path().as_os_str(),
        "status".as_ref(),
    ])
    .await;
    for (what, text) in [("status", &status_text), ("once", &once)] {
        assert!(
            !text.lines().any(|l| l.starts_with("FORGED-LINE")) && !text.contains('\u{1b}'),
            "a server's message forged {what}'s output:\n{text}"
        );
    }
    // Each secret was sent, and echoed back.
    let seen = seen.lock().unwrap().join("\n");
    for (name, value) in values {
        if name != "git" {
            assert!(seen.contains(value), "{name} was never sent: {seen}");
        }
    }
    let surfaces = [
        ("the log", &log),
        ("/status", &status),
        ("the board", &board),
        ("the alerts", &alerts),
        ("once's output", &once),
        ("status's output", &status_text),
    ];
    for (surface, text) in surfaces {
        for (name, value) in values {
            assert!(
                !text.contains(value),
                "the {name} secret is in {surface}:\n{text}"
            );
        }
    }
    let echoed = surfaces
        .iter()
        .filter(|(_, text)| {
            text.contains("denied for [secret]") || text.contains("denied for Bearer [secret]")
        })
        .count();
    assert!(echoed >= 2, "no echo shown redacted:\n{status}\n{once}");
}

/// All of the attacks above, one after another, against one worker (`run`): a target
/// padded to 100 MiB, a verified Application among 1,500 of 100 KiB, 500 heads of 400 KiB,
/// one client holding 600 connections. Its peak RSS stays under 128 MiB throughout.
#[tokio::test(flavor = "multi_thread")]
async fn the_worker_stays_under_128_mib_through_every_attack_in_turn() {
    let (_registry, image) = app_registry().await;
    let base = tempfile::tempdir().unwrap();
    let huge = format!(
        "{}{}",
        kustomization(&image, "1.0.0"),
        "\n".repeat(100 << 20)
    );
    let bare = bare_repo_at(
        base.path(),
        "gitops",
        &[
            (
                "deploy/dev/kustomization.yaml",
                &kustomization(&image, "1.0.0"),
            ),
            ("deploy/padded/kustomization.yaml", &huge),
        ],
        Some(INITIAL),
    );
    drop(huge);
    let first = crate::support::git::git(&bare, &["rev-parse", "main"])
        .trim()
        .to_string();
    let api = crate::support::kube_api::KubeApi::start().await;
    api.grant("tagpromoter", "applications", "argocd");
    for i in 0..1_500 {
        api.put(
            "applications",
            application(&format!("other-{i}"), &first, 100 << 10),
        );
    }
    api.put("applications", application("app-dev", &first, 1 << 10));
    let (kubeconfig, _) = api.kubeconfig_with_token("tagpromoter");
    let rules = tempfile::tempdir().unwrap();
    let host = image.split('/').next().unwrap();
    std::fs::write(
        rules.path().join("rules.yaml"),
        format!(
            "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: 'file://{}' }}\n  registries: [{{ host: '{host}', insecure: true }}]\n  clusters: [{{ name: dev, kubeconfig: '{}' }}]\n---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: app }}\nspec:\n  image: {image}\n  environments:\n    - {{ name: dev, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: deploy/dev/kustomization.yaml }} }}, verify: {{ argocd: {{ application: app-dev }}, cluster: dev }} }}\n    - {{ name: padded, from: dev, soak: 1m, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: deploy/padded/kustomization.yaml }} }} }}\n",
            bare.display(),
            kubeconfig.display()
        ),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (port, probes) = (free_port(), free_port());
    let worker = Worker::start_with(
        rules.path(),
        cache.path(),
        port,
        &[],
        &["--listen-probes", &format!("127.0.0.1:{probes}")],
    )
    .await;
    let main = format!("127.0.0.1:{port}");
    // The padded target and the namespace were read by the first pass (it is ready).
    let (_, after_passes) = worker.memory_kib();
    // Huge heads.
    huge_heads(&main).await;
    let (_, after_heads) = worker.memory_kib();
    // One client holding every connection it can, for 6 s.
    for h in hold_connections(&main, Duration::from_secs(6)) {
        let _ = h.await;
    }
    let probe = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{probes}/healthz"))
        .send()
        .await
        .map(|r| r.status().as_u16());
    let (_, peak) = worker.memory_kib();
    let log = worker.stop();
    eprintln!(
        "peak RSS after the first pass {after_passes} KiB, after the heads {after_heads} KiB, at the end {peak} KiB"
    );
    assert!(
        log.contains("over the 8.0 MiB a file may be"),
        "the padded target was read:\n{}",
        &log[..log.len().min(3000)]
    );
    assert_eq!(probe.ok(), Some(200));
    assert!(peak < PEAK_KIB, "peak RSS {peak} KiB");
}

/// A watch's event is one line of JSON: a line of 40 MiB (an Application with a huge
/// status) ends that watch as a failure once it passes 4 MiB, the rest unread, and the
/// worker says so and stays small.
#[tokio::test(flavor = "multi_thread")]
async fn a_huge_watch_event_ends_the_watch_unread() {
    let (_registry, image) = app_registry().await;
    let base = tempfile::tempdir().unwrap();
    let bare = bare_repo_at(
        base.path(),
        "gitops",
        &[(
            "deploy/dev/kustomization.yaml",
            &kustomization(&image, "1.0.0"),
        )],
        Some(INITIAL),
    );
    let first = crate::support::git::git(&bare, &["rev-parse", "main"])
        .trim()
        .to_string();
    let api = crate::support::kube_api::KubeApi::start().await;
    api.grant("tagpromoter", "applications", "argocd");
    api.put("applications", application("app-dev", &first, 1 << 10));
    let (kubeconfig, _) = api.kubeconfig_with_token("tagpromoter");
    let rules = tempfile::tempdir().unwrap();
    let host = image.split('/').next().unwrap();
    std::fs::write(
        rules.path().join("rules.yaml"),
        format!(
            "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: 'file://{}' }}\n  registries: [{{ host: '{host}', insecure: true }}]\n  clusters: [{{ name: dev, kubeconfig: '{}' }}]\n---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: app }}\nspec:\n  image: {image}\n  environments:\n    - {{ name: dev, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: deploy/dev/kustomization.yaml }} }}, verify: {{ argocd: {{ application: app-dev }}, cluster: dev }} }}\n",
            bare.display(),
            kubeconfig.display()
        ),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let worker = Worker::start(rules.path(), cache.path(), free_port(), &[]).await;
    let started = Instant::now();
    while api.watches() == 0 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    api.put("applications", application("app-dev", &first, 40 << 20));
    let mut log = worker.log();
    while !log.contains("a watch event is larger than the 4 MiB")
        && started.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
        log = worker.log();
    }
    let (_, peak) = worker.memory_kib();
    let log = worker.stop();
    eprintln!("peak RSS {peak} KiB");
    assert!(
        log.contains("a watch event is larger than the 4 MiB an object may be"),
        "{}",
        &log[..log.len().min(4000)]
    );
    assert!(peak < PEAK_KIB, "peak RSS {peak} KiB");
}

/// A Kubernetes API that ignores `limit` and `fieldSelector` and answers a watch's list
/// with the whole namespace (80 MiB): the page is refused once past 24 MiB, the rest
/// unread; the worker says so, still reads its Application by name at each pass, and
/// stays small.
#[tokio::test(flavor = "multi_thread")]
async fn an_api_that_ignores_limit_cannot_make_a_page_the_whole_namespace() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_registry, image) = app_registry().await;
    let base = tempfile::tempdir().unwrap();
    let bare = bare_repo_at(
        base.path(),
        "gitops",
        &[(
            "deploy/dev/kustomization.yaml",
            &kustomization(&image, "1.0.0"),
        )],
        Some(INITIAL),
    );
    let first = crate::support::git::git(&bare, &["rev-parse", "main"])
        .trim()
        .to_string();
    let one = application("app-dev", &first, 1 << 10).to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let one = one.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).await.ok() != Some(1) {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                if path.contains("watch=true") {
                    // A watch that never says anything.
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
                        .await;
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return;
                }
                if path.ends_with("/app-dev") {
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{one}",
                        one.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                    return;
                }
                // The whole namespace, in one page: 800 items of 100 KiB, streamed.
                let item = application("other", "0", 100 << 10).to_string();
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"kind\":\"ApplicationList\",\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[")
                    .await;
                for i in 0..800 {
                    let sep = if i == 0 { "" } else { "," };
                    if stream
                        .write_all(format!("{sep}{item}").as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                let _ = stream.write_all(b"]}").await;
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, format!("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://{addr}\nusers:\n- name: u\n  user:\n    token: some-token-value\ncontexts:\n- name: u@c\n  context:\n    cluster: c\n    user: u\ncurrent-context: u@c\n")).unwrap();
    let rules = tempfile::tempdir().unwrap();
    let host = image.split('/').next().unwrap();
    std::fs::write(
        rules.path().join("rules.yaml"),
        format!(
            "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: 'file://{}' }}\n  registries: [{{ host: '{host}', insecure: true }}]\n  clusters: [{{ name: dev, kubeconfig: '{}' }}]\n---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: app }}\nspec:\n  image: {image}\n  environments:\n    - {{ name: dev, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: deploy/dev/kustomization.yaml }} }}, verify: {{ argocd: {{ application: app-dev }}, cluster: dev }} }}\n",
            bare.display(),
            kubeconfig.display()
        ),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let worker = Worker::start(rules.path(), cache.path(), free_port(), &[]).await;
    let started = Instant::now();
    let mut log = worker.log();
    while !log.contains("larger than the 24 MiB") && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        log = worker.log();
    }
    let (_, peak) = worker.memory_kib();
    let log = worker.stop();
    eprintln!("peak RSS {peak} KiB");
    assert!(
        log.contains("larger than the 24 MiB"),
        "{}",
        &log[..log.len().min(4000)]
    );
    assert!(peak < PEAK_KIB, "peak RSS {peak} KiB");
}
