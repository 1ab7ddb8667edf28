//! `tagpromoter check --repo`: every target file and value exists, in a local checkout or on
//! the branch of Settings.git.

use std::path::Path;

use crate::support::git::bare_repo;
use assert_cmd::Command;

fn tagpromoter() -> Command {
    let mut cmd = Command::cargo_bin("tagpromoter").unwrap();
    cmd.env_remove("TAGPROMOTER_RULES");
    cmd
}

const OVERLAY: &str = "images:\n  - name: ghcr.io/stefanprodan/podinfo\n    newTag: 6.5.3\n";
const VALUES: &str = "image:\n  repository: ghcr.io/stefanprodan/podinfo\n  tag: 6.5.3\n";
const BILLING_VALUES: &str = "api:\n  image:\n    tag: 2.1.0\n    digest: sha256:0000000000000000000000000000000000000000000000000000000000000000\n";
const BILLING_PROD: &str = "spec:\n  containers:\n    - image: ghcr.io/acme/billing-api:2.1.0 # {\"$imagepolicy\": \"billing-api:prod\"}\n";
const CRONJOB: &str = "spec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers:\n            - image: ghcr.io/acme/nightly-report:main-abc1234-1\n";

/// The files the example rules (`rules/`) point at.
fn gitops_files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("apps/podinfo/overlays/dev/kustomization.yaml", OVERLAY),
        ("apps/podinfo/staging/values.yaml", VALUES),
        ("apps/podinfo/overlays/prod/kustomization.yaml", OVERLAY),
        ("apps/billing/values-staging.yaml", BILLING_VALUES),
        ("apps/billing/prod/deployment.yaml", BILLING_PROD),
        ("apps/reports/dev/cronjob.yaml", CRONJOB),
    ]
}

fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

fn rules_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

#[test]
fn a_local_checkout_with_every_target_passes() {
    let tree = tempfile::tempdir().unwrap();
    write_tree(tree.path(), &gitops_files());
    let out = tagpromoter()
        .arg("--rules")
        .arg(rules_dir())
        .args(["check", "--repo"])
        .arg(tree.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("every target found in"), "{text}");
}

#[test]
fn missing_files_values_and_symlinks_are_reported_at_the_rule() {
    let tree = tempfile::tempdir().unwrap();
    let mut files = gitops_files();
    files.retain(|(p, _)| {
        !p.ends_with("overlays/prod/kustomization.yaml")
            && !p.ends_with("billing/prod/deployment.yaml")
    });
    files.retain(|(p, _)| !p.ends_with("staging/values.yaml"));
    files.push((
        "apps/podinfo/staging/values.yaml",
        "image:\n  repository: ghcr.io/stefanprodan/podinfo\n",
    ));
    write_tree(tree.path(), &files);
    std::fs::create_dir_all(tree.path().join("apps/billing/prod")).unwrap();
    std::os::unix::fs::symlink(
        "/etc/passwd",
        tree.path().join("apps/billing/prod/deployment.yaml"),
    )
    .unwrap();
    let out = tagpromoter()
        .arg("--rules")
        .arg(rules_dir())
        .args(["check", "--repo"])
        .arg(tree.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    let expect = [
        (
            "podinfo.yaml:13:7: podinfo/staging: target apps/podinfo/staging/values.yaml:",
            "values path image.tag not found",
        ),
        (
            "podinfo.yaml:18:7: podinfo/prod: target apps/podinfo/overlays/prod/kustomization.yaml:",
            "does not exist in",
        ),
        (
            "billing.yaml:18:7: billing-api/prod: target apps/billing/prod/deployment.yaml:",
            "is a symbolic link",
        ),
    ];
    for (place, why) in expect {
        let line = text
            .lines()
            .find(|l| l.contains(place))
            .unwrap_or_else(|| panic!("nothing for {place} in:\n{text}"));
        assert!(line.contains(why), "{line}");
    }
    assert_eq!(text.lines().count(), 3, "{text}");
}

#[test]
fn the_branch_of_settings_git_is_checked_without_a_dir() {
    let base = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        base.path(),
        "deploys",
        &[("apps/x/kustomization.yaml", OVERLAY)],
    );
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("rules.yaml"),
        format!(
            "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: 'file://{}' }}\n---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: podinfo }}\nspec:\n  image: ghcr.io/stefanprodan/podinfo\n  environments:\n    - name: dev\n      policy: {{ semver: '^6' }}\n      target: {{ kustomize: {{ file: apps/x/kustomization.yaml }} }}\n    - name: qa\n      policy: {{ semver: '^6' }}\n      target: {{ kustomize: {{ file: apps/qa/kustomization.yaml }} }}\n",
            bare.display()
        ),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let out = tagpromoter()
        .env("TAGPROMOTER_CACHE_DIR", cache.path())
        .arg("--rules")
        .arg(rules.path())
        .args(["check", "--repo"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("podinfo/qa: target apps/qa/kustomization.yaml:")
            && text.contains("does not exist in"),
        "{text}"
    );
    assert!(!text.contains("podinfo/dev"), "{text}");
}

#[test]
fn a_missing_checkout_is_one_clear_error() {
    let out = tagpromoter()
        .arg("--rules")
        .arg(rules_dir())
        .args(["check", "--repo", "/nonexistent/checkout"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/checkout is not a directory")
    );
}

/// `check --repo DIR --render` bumps every target on trial, as a pass would, and renders
/// Kustomize targets before and after: an overlay whose new entry would match no container
/// (the base writes `nginx`, the target names `docker.io/library/nginx`) is reported at
/// its environment; with the name the containers use, every target passes. The checkout
/// is left as it was.
#[test]
fn check_render_bumps_every_target_on_trial() {
    let tree = tempfile::tempdir().unwrap();
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          image: nginx:1.25.0\n";
    let files = [
        ("base/deployment.yaml", deployment),
        ("base/kustomization.yaml", "resources: [deployment.yaml]\n"),
        ("prod/kustomization.yaml", "resources:\n  - ../base\n"),
        (
            "staging/values.yaml",
            "image:\n  repository: nginx\n  tag: 1.25.0\n",
        ),
    ];
    write_tree(tree.path(), &files);
    let rules = tempfile::tempdir().unwrap();
    let write_rules = |name: &str| {
        std::fs::write(
            rules.path().join("rules.yaml"),
            format!("apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: 'https://git.example.com/gitops.git' }}\n---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: web }}\nspec:\n  image: docker.io/library/nginx\n  environments:\n    - {{ name: staging, policy: {{ semver: '^1.0.0' }}, target: {{ helm: {{ file: staging/values.yaml, tag: image.tag }} }} }}\n    - {{ name: prod, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: prod/kustomization.yaml{name} }} }} }}\n"),
        )
        .unwrap();
    };
    let cache = tempfile::tempdir().unwrap();
    let check = || {
        tagpromoter()
            .arg("--rules")
            .arg(rules.path())
            .arg("--cache-dir")
            .arg(cache.path())
            .args(["check", "--render", "--repo"])
            .arg(tree.path())
            .output()
            .unwrap()
    };
    write_rules("");
    let out = check();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("web/prod: a bump would be refused")
            && text.contains("Deployment/web container web runs nginx:1.25.0"),
        "{text}"
    );
    assert!(!text.contains("web/staging"), "{text}");
    write_rules(", name: nginx");
    let out = check();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("every target bumped on trial as intended (1 rendered before and after)"),
        "{text}"
    );
    for (path, content) in files {
        assert_eq!(
            std::fs::read_to_string(tree.path().join(path)).unwrap(),
            content
        );
    }
}
