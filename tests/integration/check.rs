//! `tagpromoter check` and `tagpromoter schema`, run as a user runs them.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use proptest::prelude::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tagpromoter() -> Command {
    let mut cmd = Command::cargo_bin("tagpromoter").expect("binary builds");
    cmd.env_remove("TAGPROMOTER_RULES");
    cmd
}

#[test]
fn the_example_rules_are_valid() {
    let out = tagpromoter()
        .args(["check", "--rules"])
        .arg(root().join("rules"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("valid (3 promotions"), "{text}");
}

#[test]
fn rules_directory_comes_from_the_environment_too() {
    let out = tagpromoter()
        .arg("check")
        .env("TAGPROMOTER_RULES", root().join("rules"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}

/// What a person reads for the broken example, whole (positions, hints, the count).
#[test]
fn the_report_for_broken_rules_reads_as_it_should() {
    let out = tagpromoter()
        .current_dir(root())
        .args(["check", "--rules", "tests/data/rules-broken"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    insta::assert_snapshot!("check_rules_broken", text);
}

/// A dozen different mistakes, each reported at its place with a hint, and exit 2.
#[test]
fn every_mistake_is_reported_with_its_position() {
    let dir = root().join("tests/data/rules-broken");
    let out = tagpromoter()
        .args(["check", "--rules"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    let expected = [
        (
            "settings.yaml:6:5:",
            "unknown key `brnach` in git; did you mean `branch`?",
        ),
        ("settings.yaml:7:13:", "\"2 minutes\" is not a duration"),
        ("settings.yaml:9:1:", "a second Settings document"),
        ("podinfo.yaml:7:15:", "\"(unclosed\" is not a valid regex"),
        ("podinfo.yaml:10:25:", "invalid semver range \"latest\""),
        ("podinfo.yaml:11:36:", "is absolute"),
        (
            "podinfo.yaml:13:13:",
            "`from: prod` names a later environment",
        ),
        (
            "podinfo.yaml:14:7:",
            "unknown key `soakk` in an environment; did you mean `soak`?",
        ),
        ("podinfo.yaml:16:31:", "leaves the repository"),
        (
            "podinfo.yaml:18:13:",
            "`from: qa` names no earlier environment",
        ),
        ("podinfo.yaml:19:13:", "\"forever\" is not a duration"),
        (
            "podinfo.yaml:23:11:",
            "cannot read \"Friday afternoon\" as a freeze bound",
        ),
        ("podinfo.yaml:24:59:", "unknown time zone \"Mars/Olympus\""),
        (
            "podinfo.yaml:26:13:",
            "environment \"prod\" is declared twice",
        ),
        ("podinfo.yaml:27:31:", "alphabetical must be asc or desc"),
        ("podinfo.yaml:28:18:", "pinDigest must be true or false"),
        (
            "podinfo.yaml:31:1:",
            "promotion \"podinfo\" is declared twice",
        ),
        ("podinfo.yaml:35:10:", "must be a repository without a tag"),
        ("podinfo.yaml:38:15:", "policy must be a mapping"),
        ("podinfo.yaml:39:17:", "unknown key `chart` in target"),
    ];
    for (place, message) in expected {
        let line = text
            .lines()
            .find(|l| l.contains(place))
            .unwrap_or_else(|| panic!("nothing at {place} in:\n{text}"));
        assert!(
            line.contains(message),
            "{place}: expected {message:?}, got {line:?}"
        );
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("problems in"), "{stderr}");
}

#[test]
fn a_missing_settings_document_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("rules/podinfo.yaml"),
        dir.path().join("podinfo.yaml"),
    )
    .unwrap();
    let out = tagpromoter()
        .args(["check", "--rules"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no Settings document"));
}

#[test]
fn a_missing_rules_directory_says_how_to_point_at_one() {
    let out = tagpromoter()
        .args(["check", "--rules", "/nonexistent/rules"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--rules DIR"));
}

#[test]
fn receivers_name_a_known_type_once_with_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "settings.yaml",
        "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: { url: file:///srv/gitops.git }\n  receivers:\n    - { type: distribution, secretFile: /s/registry }\n    - { type: nexus, secretFile: /s/nexus }\n    - { type: distribution, secretFile: /s/again }\n    - { type: github }\n",
    );
    let out = tagpromoter()
        .args(["check", "--rules"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "settings.yaml:7:15: receiver type \"nexus\" is not supported; use one of distribution, dockerhub, github, gitea, gitlab, harbor, quay, generic",
        "settings.yaml:8:15: receiver type \"distribution\" is listed twice",
        "settings.yaml:9:7: a receiver needs `secretFile`",
    ] {
        assert!(text.contains(expected), "{expected}\nnot in:\n{text}");
    }
}

#[test]
fn pull_requests_need_a_forge() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "settings.yaml",
        "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: { url: file:///srv/gitops.git }\n",
    );
    std::fs::copy(
        root().join("rules/podinfo.yaml"),
        dir.path().join("podinfo.yaml"),
    )
    .unwrap();
    let out = tagpromoter()
        .args(["check", "--rules"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("podinfo.yaml:18:7: environment \"prod\" writes by pull-request"),
        "{text}"
    );
}

/// `verify:` names one controller object by Kubernetes names, and a cluster that the
/// Settings declare; each mistake is reported where it is, and a good one passes.
#[test]
fn verify_names_one_controller_object_and_a_declared_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let settings = "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: { url: file:///srv/gitops.git }\n  clusters:\n    - { name: staging-eu, kubeconfig: /etc/tagpromoter/staging.kubeconfig, context: staging }\n";
    write(dir.path(), "settings.yaml", settings);
    let promotion = |verify: &[&str]| {
        let envs: String = verify
            .iter()
            .enumerate()
            .map(|(i, v)| format!("    - name: e{i}\n      policy: {{ semver: '^1.0.0' }}\n      target: {{ kustomize: {{ file: apps/e{i}.yaml }} }}\n      verify: {v}\n"))
            .collect();
        format!(
            "apiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: app }}\nspec:\n  image: ghcr.io/example/app\n  environments:\n{envs}"
        )
    };
    let check = || {
        let out = tagpromoter()
            .args(["check", "--rules"])
            .arg(dir.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    write(
        dir.path(),
        "app.yaml",
        &promotion(&[
            "{ argocd: { application: app-staging }, cluster: staging-eu, deployTimeout: 20m }",
            "{ flux: { kustomization: apps, helmRelease: app } }",
        ]),
    );
    let (code, text) = check();
    assert_eq!(code, Some(0), "{text}");

    // References are checked once every document reads well.
    write(
        dir.path(),
        "app.yaml",
        &promotion(&["{ argocd: { application: app }, cluster: staging-ue }"]),
    );
    let (code, text) = check();
    assert_eq!(code, Some(2), "{text}");
    let expected = "app.yaml:7:7: environment \"e0\": verify.cluster \"staging-ue\" is not in Settings; did you mean `staging-eu`? add it to spec.clusters";
    assert!(text.contains(expected), "missing {expected:?} in:\n{text}");

    write(
        dir.path(),
        "app.yaml",
        &promotion(&[
            "{ argocd: { application: app }, flux: { kustomization: apps } }",
            "{ argocd: { application: App_Staging } }",
            "{ flux: { kustomization: apps }, deployTimeout: soon }",
            "{ cluster: staging-eu }",
        ]),
    );
    let (code, text) = check();
    assert_eq!(code, Some(2), "{text}");
    for expected in [
        "app.yaml:10:15: verify needs exactly one of argocd: { application } or flux: { kustomization }",
        "app.yaml:14:40: verify.argocd.application \"App_Staging\" is not a Kubernetes name",
        "app.yaml:18:63: verify.deployTimeout: \"soon\" is not a duration",
        "app.yaml:22:15: verify needs exactly one of argocd",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn the_committed_schema_is_current() {
    let out = tagpromoter().arg("schema").output().unwrap();
    assert!(out.status.success());
    let committed = std::fs::read_to_string(root().join("schema/rules.schema.json")).unwrap();
    assert!(
        committed == String::from_utf8_lossy(&out.stdout),
        "schema/rules.schema.json is stale: run `cargo run -- schema > schema/rules.schema.json`"
    );
    let schema: serde_json::Value = serde_json::from_str(&committed).unwrap();
    let env = &schema["$defs"]["Environment"]["properties"];
    for key in [
        "from",
        "soak",
        "policy",
        "minAge",
        "target",
        "freeze",
        "platforms",
        "pinDigest",
        "stallAfter",
        "write",
        "verify",
    ] {
        assert!(env.get(key).is_some(), "schema lacks environment.{key}");
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// Bits of rules YAML to splice into random documents.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("apiVersion: tagpromoter.io/v1alpha1\n".to_string()),
        Just("kind: Promotion\n".to_string()),
        Just("kind: Settings\n".to_string()),
        Just("metadata: { name: x }\n".to_string()),
        Just("spec:\n  image: ghcr.io/a/b\n  environments:\n".to_string()),
        Just("    - name: dev\n      policy: { semver: '^1' }\n".to_string()),
        Just("      target: { helm: { file: a.yaml, tag: image.tag } }\n".to_string()),
        Just("      from: dev\n      soak: 1h\n".to_string()),
        Just("      freeze: [{ from: 'Fri 16:00', to: 'Mon 08:00' }]\n".to_string()),
        Just("a: &a [*a]\n".to_string()),
        Just("---\n".to_string()),
        Just("  git: { url: https://x/y.git }\n".to_string()),
        "[ -~\n]{0,40}".prop_map(|s| s),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the input, the loader answers with rules or diagnostics; it never panics.
    #[test]
    fn the_loader_never_panics(parts in proptest::collection::vec(fragment(), 0..16), raw in "\\PC{0,200}") {
        let text: String = parts.concat();
        let sources = vec![
            (PathBuf::from("a.yaml"), text),
            (PathBuf::from("b.yaml"), raw),
        ];
        match tagpromoter::rules::parse_sources(Path::new("rules"), &sources) {
            Ok(_) => {}
            Err(diags) => prop_assert!(!diags.is_empty()),
        }
    }
}

#[test]
fn a_billion_laughs_fails_fast() {
    let mut text = String::from(
        "apiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: { name: x }\nx0: &a0 [1,1,1,1,1,1,1,1,1,1]\n",
    );
    for i in 1..30 {
        let p = i - 1;
        text.push_str(&format!(
            "x{i}: &a{i} [*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p}]\n"
        ));
    }
    text.push_str("spec:\n  image: ghcr.io/a/b\n  environments: *a29\n");
    let started = std::time::Instant::now();
    let result = tagpromoter::rules::parse_sources(
        Path::new("rules"),
        &[(PathBuf::from("bomb.yaml"), text)],
    );
    assert!(result.is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// Credentials in `git.url` would reach git's arguments (`/proc/*/cmdline`) and logs:
/// `check` refuses a password, and over https any user info (a token as the user name,
/// issue 16), without repeating it; an ssh user name is fine.
#[test]
fn credentials_in_the_git_url_are_refused_without_being_repeated() {
    for (url, refused) in [
        ("https://bot:hunter2@git.example.com/x.git", Some("hunter2")),
        (
            "https://ghp_hunter2Token@github.com/acme/x.git",
            Some("ghp_hunter2Token"),
        ),
        ("ssh://git:hunter2@git.example.com/x.git", Some("hunter2")),
        ("ssh://git@git.example.com/acme/x.git", None),
        ("git@github.com:acme/x.git", None),
    ] {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "settings.yaml",
            &format!(
                "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: '{url}' }}\n"
            ),
        );
        let out = tagpromoter()
            .args(["check", "--rules"])
            .arg(dir.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        match refused {
            Some(secret) => {
                assert_eq!(out.status.code(), Some(2), "{url}: {text}");
                assert!(
                    text.contains("settings.yaml:4:15: git.url holds")
                        && text.contains("name it in git.auth"),
                    "{url}: {text}"
                );
                assert!(!text.contains(secret), "{url}: {text}");
            }
            None => assert!(!text.contains("git.url holds"), "{url}: {text}"),
        }
    }
}

/// `--help` lists the exit codes and every environment variable the flags read.
#[test]
fn help_lists_exit_codes_and_every_environment_variable() {
    let out = tagpromoter().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Exit codes:\n  0  done"), "{help}");
    let cli = std::fs::read_to_string(root().join("src/cli.rs")).unwrap();
    let vars: Vec<&str> = cli
        .split("env = \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(vars.len() >= 8, "{vars:?}");
    for var in vars {
        assert!(help.contains(var), "{var} is missing from --help:\n{help}");
    }
}

/// Completions for bash (syntax-checked by bash itself), zsh and fish name the commands.
#[test]
fn shell_completions_name_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = tagpromoter().args(["completions", shell]).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        let script = String::from_utf8_lossy(&out.stdout);
        for command in ["promote", "release", "status", "plan"] {
            assert!(script.contains(command), "{shell}: {command}");
        }
        if shell == "bash" {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("tagpromoter.bash");
            std::fs::write(&file, script.as_bytes()).unwrap();
            let status = std::process::Command::new("bash")
                .arg("-n")
                .arg(&file)
                .status()
                .unwrap();
            assert!(status.success(), "bash -n rejects the completion script");
        }
    }
}

/// A bad `metadata.name` does not hide the rest of the file's problems (issue 17).
#[test]
fn a_bad_promotion_name_does_not_hide_the_other_problems() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "app.yaml",
        "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: { url: 'file:///srv/deploys.git' }\n---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: { name: 'Bad Name!' }\nspec:\n  image: ghcr.io/acme/app\n  environments:\n    - name: dev\n      policy: { semver: '^1' }\n      nonsense: true\n      target: { kustomize: { file: apps/x/kustomization.yaml } }\n",
    );
    let out = tagpromoter()
        .args(["check", "--rules"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("app.yaml:8:19: promotion name \"Bad Name!\""),
        "{text}"
    );
    assert!(
        text.contains("app.yaml:14:7: unknown key `nonsense`"),
        "{text}"
    );
}
