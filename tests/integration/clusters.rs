//! Reading rollouts from clusters, against the STAND-IN Kubernetes API of
//! `support::kube_api` (no kube-apiserver can run here): kubeconfigs with a token and with a
//! client certificate, RBAC refusals, missing objects, an API that is not there, each object
//! read once by name however many environments read it, and what a kubeconfig may make the
//! worker do (exec plugins, skipped TLS verification, proxies: only where allowed).

use serde_json::{Value, json};
use tagpromoter::deploy::RolloutState;
use tagpromoter::deploy::cluster::{ClusterErrorKind, Clusters};
use tagpromoter::rules::{Cluster, Controller};

use crate::support::kube_api::KubeApi;

const BUMP: &str = "4f5e7c1d2b3a4f5e7c1d2b3a4f5e7c1d2b3a4f5e";

fn application(name: &str, health: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": { "name": name, "namespace": "argocd", "generation": 2 },
        "spec": {
            "project": "default",
            "source": { "repoURL": "https://git.example.com/platform/gitops.git", "targetRevision": "main", "path": format!("apps/{name}") },
            "destination": { "server": "https://kubernetes.default.svc", "namespace": name }
        },
        "status": {
            "sync": { "status": "Synced", "revision": BUMP },
            "health": { "status": health },
            "operationState": { "phase": "Succeeded", "message": "successfully synced (all tasks run)", "startedAt": "2026-11-30T10:00:00Z", "finishedAt": "2026-11-30T10:00:20Z", "syncResult": { "revision": BUMP } },
            "history": [ { "id": 1, "revision": BUMP, "deployStartedAt": "2026-11-30T10:00:00Z", "deployedAt": "2026-11-30T10:00:18Z" } ]
        }
    })
}

fn flux_object(kind: &str, name: &str, extra: Value) -> Value {
    let mut status = json!({
        "observedGeneration": 1,
        "conditions": [ { "type": "Ready", "status": "True", "reason": "ReconciliationSucceeded", "message": "Applied", "observedGeneration": 1, "lastTransitionTime": "2026-11-30T10:02:00Z" } ]
    });
    if let (Some(s), Some(e)) = (status.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    let group = if kind == "HelmRelease" {
        "helm.toolkit.fluxcd.io/v2"
    } else {
        "kustomize.toolkit.fluxcd.io/v1"
    };
    json!({ "apiVersion": group, "kind": kind, "metadata": { "name": name, "namespace": "flux-system", "generation": 1 }, "spec": {}, "status": status })
}

fn cluster(name: &str, kubeconfig: std::path::PathBuf) -> Cluster {
    Cluster {
        name: name.into(),
        kubeconfig,
        context: None,
        allow_exec_plugins: false,
        allow_insecure_skip_tls_verify: false,
        allow_proxy_url: false,
    }
}

fn argocd(application: &str) -> Controller {
    Controller::Argocd {
        application: application.into(),
        namespace: "argocd".into(),
    }
}

#[tokio::test]
async fn rollouts_are_read_with_a_token_or_a_client_certificate_each_object_by_name() {
    let api = KubeApi::start().await;
    api.put("applications", application("podinfo-staging", "Healthy"));
    api.put("applications", application("podinfo-prod", "Degraded"));
    api.put(
        "kustomizations",
        flux_object(
            "Kustomization",
            "apps",
            json!({ "lastAppliedRevision": format!("main@sha1:{BUMP}") }),
        ),
    );
    api.put(
        "helmreleases",
        flux_object("HelmRelease", "podinfo", json!({})),
    );
    for user in ["reader", "cert-reader"] {
        api.grant(user, "applications", "argocd");
        api.grant(user, "kustomizations", "flux-system");
        api.grant(user, "helmreleases", "flux-system");
    }
    let (by_token, token) = api.kubeconfig_with_token("reader");
    let by_certificate = api.kubeconfig_with_certificate("cert-reader");
    let clusters = Clusters::new(vec![
        cluster("staging", by_token),
        cluster("prod", by_certificate),
    ]);
    let flux = Controller::Flux {
        kustomization: "apps".into(),
        namespace: "flux-system".into(),
        helm_release: Some("podinfo".into()),
    };
    let staging = Some("staging".to_string());
    let prod = Some("prod".to_string());
    let wanted = vec![
        (staging.clone(), argocd("podinfo-staging")),
        (staging.clone(), argocd("podinfo-prod")),
        (staging.clone(), argocd("not-there")),
        (staging.clone(), flux.clone()),
        (prod.clone(), argocd("podinfo-staging")),
    ];
    let read = clusters.rollouts(&wanted).await;

    let healthy = read[&wanted[0]].as_ref().unwrap();
    assert_eq!(healthy.revisions, vec![BUMP.to_string()]);
    assert_eq!(
        healthy.state,
        RolloutState::Healthy {
            since: Some("2026-11-30T10:00:18Z".parse().unwrap())
        }
    );
    assert!(matches!(
        read[&wanted[1]].as_ref().unwrap().state,
        RolloutState::Degraded { .. }
    ));
    let missing = read[&wanted[2]].as_ref().unwrap_err();
    assert_eq!(missing.kind, ClusterErrorKind::NotFound);
    assert!(
        missing
            .detail
            .contains("no Application \"not-there\" in argocd"),
        "{missing}"
    );
    let flux_read = read[&wanted[3]].as_ref().unwrap();
    assert_eq!(flux_read.revisions, vec![BUMP.to_string()]);
    assert!(matches!(flux_read.state, RolloutState::Healthy { .. }));
    assert_eq!(
        read[&wanted[4]].as_ref().unwrap().state,
        healthy.state,
        "read with a client certificate"
    );

    // Each object read once by name, never its whole namespace (issue 29): six here, for
    // five environments on two clusters.
    let mut requests = api.requests();
    requests.sort();
    assert_eq!(
        requests,
        vec![
            "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/not-there",
            "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/podinfo-prod",
            "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/podinfo-staging",
            "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/podinfo-staging",
            "/apis/helm.toolkit.fluxcd.io/v2/namespaces/flux-system/helmreleases/podinfo",
            "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/apps",
        ]
    );
    for result in read.values() {
        if let Err(e) = result {
            assert!(
                !format!("{e} {e:?}").contains(&token),
                "the token leaked: {e:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_forbidden_unauthorized_or_unreachable_cluster_says_which_and_what_to_do() {
    let api = KubeApi::start().await;
    api.put("applications", application("podinfo-staging", "Healthy"));
    let (no_rbac, token) = api.kubeconfig_with_token("nobody");
    let revoked = api.kubeconfig("revoked", &api.url, "token: not-a-token-it-knows");
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = format!("https://{}", closed.local_addr().unwrap());
    drop(closed);
    let unreachable = api.kubeconfig("gone", &gone, "token: whatever");
    let broken = std::env::temp_dir().join(format!("broken-{}.kubeconfig", std::process::id()));
    std::fs::write(&broken, "this: is not: a kubeconfig").unwrap();
    let clusters = Clusters::new(vec![
        cluster("no-rbac", no_rbac),
        cluster("revoked", revoked),
        cluster("gone", unreachable),
        cluster("broken", broken.clone()),
    ]);
    let wanted: Vec<_> = ["no-rbac", "revoked", "gone", "broken"]
        .into_iter()
        .map(|c| (Some(c.to_string()), argocd("podinfo-staging")))
        .collect();
    let read = clusters.rollouts(&wanted).await;
    let error = |i: usize| read[&wanted[i]].as_ref().unwrap_err().clone();

    let forbidden = error(0);
    assert_eq!(forbidden.kind, ClusterErrorKind::Forbidden, "{forbidden}");
    assert!(
        forbidden
            .detail
            .contains("grant get, list and watch on applications")
            && forbidden
                .detail
                .contains("cannot get resource \"applications\""),
        "{forbidden}"
    );
    assert!(!format!("{forbidden:?}").contains(&token));
    assert_eq!(
        error(1).kind,
        ClusterErrorKind::Unauthorized,
        "{}",
        error(1)
    );
    assert!(!format!("{:?}", error(1)).contains("not-a-token-it-knows"));
    assert_eq!(error(2).kind, ClusterErrorKind::Unreachable, "{}", error(2));
    let config = error(3);
    assert_eq!(config.kind, ClusterErrorKind::Config, "{config}");
    assert!(config.detail.contains("it is not a kubeconfig"), "{config}");
    let _ = std::fs::remove_file(broken);
}

/// A kubeconfig that is not there yet (a secret mounted after the worker started) is read
/// again on the next pass, not remembered as broken.
#[tokio::test]
async fn a_kubeconfig_that_appears_later_is_used_on_the_next_read() {
    let api = KubeApi::start().await;
    api.put("applications", application("podinfo-staging", "Healthy"));
    api.grant("reader", "applications", "argocd");
    let (written, _) = api.kubeconfig_with_token("reader");
    let later = written.with_extension("later");
    let clusters = Clusters::new(vec![cluster("staging", later.clone())]);
    let wanted = vec![(Some("staging".to_string()), argocd("podinfo-staging"))];
    let first = clusters.rollouts(&wanted).await;
    assert_eq!(
        first[&wanted[0]].as_ref().unwrap_err().kind,
        ClusterErrorKind::Config
    );
    std::fs::rename(&written, &later).unwrap();
    let second = clusters.rollouts(&wanted).await;
    assert!(
        matches!(
            second[&wanted[0]].as_ref().map(|r| &r.state),
            Ok(RolloutState::Healthy { .. })
        ),
        "{:?}",
        second[&wanted[0]]
    );
}

/// A kubeconfig whose user runs `plugin` (a shell script written into `dir`) for its
/// credentials, with `env` set by the kubeconfig; written by the stand-in API's own
/// kubeconfig writer.
fn exec_kubeconfig(
    api: &KubeApi,
    dir: &std::path::Path,
    name: &str,
    plugin: &str,
) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join(format!("{name}.sh"));
    std::fs::write(&script, format!("#!/bin/sh\n{plugin}\n")).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    api.kubeconfig(
        "reader",
        &api.url,
        &format!(
            "exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      env: [{{ name: PLUGIN_SETTING, value: from-the-kubeconfig }}]",
            script.display()
        ),
    )
}

fn allowing(mut c: Cluster) -> Cluster {
    c.allow_exec_plugins = true;
    c
}

/// Issue 29: a kubeconfig's `exec` plugin runs only where the cluster in Settings allows
/// it — then with only PATH, HOME, KUBERNETES_EXEC_INFO and the kubeconfig's own `env:`
/// (none of the worker's environment), within 10 s (a plugin that never exits fails its
/// own cluster and delays no other), and a failing plugin's output (which may be a secret)
/// is never shown. Refused, it never starts, and the error names the kubeconfig's line.
#[tokio::test(flavor = "multi_thread")]
async fn an_exec_plugin_runs_only_where_allowed_bounded_and_with_a_minimal_environment() {
    let api = KubeApi::start().await;
    api.put("applications", application("podinfo-staging", "Healthy"));
    api.grant("reader", "applications", "argocd");
    let (by_token, token) = api.kubeconfig_with_token("reader");
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    let env = dir.path().join("env");
    let printing = exec_kubeconfig(
        &api,
        dir.path(),
        "printing",
        &format!(
            "echo ran >> {}\nenv > {}\nprintf '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{token}\"}}}}'",
            ran.display(),
            env.display()
        ),
    );
    let hanging = exec_kubeconfig(&api, dir.path(), "hanging", "exec sleep 600");
    let failing = exec_kubeconfig(
        &api,
        dir.path(),
        "failing",
        "echo 'SECRET-FROM-THE-PLUGIN'; echo 'SECRET-ON-STDERR' >&2; exit 3",
    );
    let place = |c: &str| (Some(c.to_string()), argocd("podinfo-staging"));

    // Not allowed: it never runs.
    let refused = Clusters::new(vec![cluster("refused", printing.clone())]);
    let read = refused.rollouts(&[place("refused")]).await;
    let error = read[&place("refused")].as_ref().unwrap_err().clone();
    assert_eq!(error.kind, ClusterErrorKind::Config, "{error}");
    let line = std::fs::read_to_string(&printing)
        .unwrap()
        .lines()
        .position(|l| l.trim_start().starts_with("exec:"))
        .unwrap()
        + 1;
    assert!(
        error
            .detail
            .contains(&format!("{}:{line}:", printing.display()))
            && error.detail.contains("allowExecPlugins: true"),
        "{error}"
    );
    assert!(!ran.exists(), "the plugin ran though not allowed");

    // Allowed: it runs, with a minimal environment; a hanging one fails alone, in time.
    let clusters = Clusters::new(vec![
        allowing(cluster("allowed", printing)),
        allowing(cluster("hanging", hanging)),
        allowing(cluster("failing", failing)),
        cluster("plain", by_token),
    ]);
    let wanted = [
        place("allowed"),
        place("hanging"),
        place("failing"),
        place("plain"),
    ];
    let started = std::time::Instant::now();
    let read = clusters.rollouts(&wanted).await;
    let took = started.elapsed();
    assert!(read[&wanted[0]].is_ok(), "{:?}", read[&wanted[0]]);
    assert!(read[&wanted[3]].is_ok(), "{:?}", read[&wanted[3]]);
    let seen = std::fs::read_to_string(&env).unwrap();
    let names: std::collections::BTreeSet<&str> = seen
        .lines()
        .filter_map(|l| l.split_once('=').map(|(n, _)| n))
        // (What the shell sets itself.)
        .filter(|n| !["PWD", "SHLVL", "_", "OLDPWD"].contains(n))
        .collect();
    let expected: std::collections::BTreeSet<&str> =
        ["HOME", "KUBERNETES_EXEC_INFO", "PATH", "PLUGIN_SETTING"]
            .into_iter()
            .filter(|n| *n != "HOME" || std::env::var_os("HOME").is_some())
            .collect();
    assert_eq!(names, expected, "the plugin saw:\n{seen}");
    let hung = read[&wanted[1]].as_ref().unwrap_err();
    assert!(hung.detail.contains("did not finish within 10s"), "{hung}");
    assert!(took < std::time::Duration::from_secs(20), "took {took:?}");
    let failed = read[&wanted[2]].as_ref().unwrap_err();
    let shown = format!("{failed} {failed:?}");
    assert!(shown.contains("failed (exit status: 3)"), "{shown}");
    assert!(
        !shown.contains("SECRET-FROM-THE-PLUGIN") && !shown.contains("SECRET-ON-STDERR"),
        "{shown}"
    );
}

/// `insecure-skip-tls-verify` and `proxy-url` are refused unless the cluster allows them, and
/// `check` names the kubeconfig's line for each refusal.
#[tokio::test(flavor = "multi_thread")]
async fn check_names_the_kubeconfig_line_of_what_it_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("dev.kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: dev\n  cluster:\n    server: https://10.0.0.1:6443\n    insecure-skip-tls-verify: true\n    proxy-url: http://proxy.example:3128\nusers:\n- name: bot\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: aws\n      args: [eks, get-token]\ncontexts:\n- name: bot@dev\n  context: { cluster: dev, user: bot }\ncurrent-context: bot@dev\n",
    )
    .unwrap();
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("rules.yaml"),
        format!(
            "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: https://git.example.com/acme/gitops.git }}\n  clusters: [{{ name: dev, kubeconfig: '{}' }}]\n---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: app }}\nspec:\n  image: ghcr.io/acme/app\n  environments:\n    - {{ name: dev, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: a.yaml }} }}, verify: {{ argocd: {{ application: app }}, cluster: dev }} }}\n",
            kubeconfig.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tagpromoter"))
        .arg("--rules")
        .arg(rules.path())
        .arg("check")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2), "{text}");
    let k = kubeconfig.display();
    for expected in [
        format!("{k}:7:1: cluster \"dev\": cluster \"dev\" skips TLS verification"),
        format!("{k}:8:1: cluster \"dev\": cluster \"dev\" is reached through a proxy"),
        format!(
            "{k}:12:1: cluster \"dev\": user \"bot\" gets its credentials by running a command (aws)"
        ),
    ] {
        assert!(text.contains(&expected), "{expected} in:\n{text}");
    }
}
