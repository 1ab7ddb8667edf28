//! Reading rollouts from clusters, against the STAND-IN Kubernetes API of
//! `support::kube_api` (no kube-apiserver can run here): kubeconfigs with a token and with a
//! client certificate, RBAC refusals, missing objects, an API that is not there, and one list
//! per cluster, kind and namespace however many environments read it.

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
