//! `tagpromoter tags`, run as a person runs it, against the real registry with the rules'
//! credentials.

use crate::support::oci::Pusher;
use crate::support::{Auth, DockerRegistry};
use assert_cmd::Command;

fn rules_for(dir: &std::path::Path, addr: &str, password_file: &std::path::Path) {
    std::fs::write(
        dir.join("settings.yaml"),
        format!(
            "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: file:///srv/gitops.git }}\n  registries:\n    - {{ host: '{addr}', insecure: true, username: alice, passwordFile: {} }}\n",
            password_file.display()
        ),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_shows_digests_created_times_and_platforms() {
    let reg = DockerRegistry::start(Auth::Htpasswd("alice", "cli-pass-7"));
    let pusher = Pusher::new(&reg.addr).basic("alice", "cli-pass-7");
    let amd = pusher
        .image("acme/cli", None, "2026-05-01T00:00:00Z", "linux", "amd64")
        .await;
    let arm = pusher
        .image("acme/cli", None, "2026-05-01T00:01:00Z", "linux", "arm64")
        .await;
    let index = pusher
        .index(
            "acme/cli",
            "2.0.0",
            &[(amd, "linux", "amd64"), (arm, "linux", "arm64")],
        )
        .await;
    let single = pusher
        .image(
            "acme/cli",
            Some("1.0.0"),
            "2026-04-01T00:00:00Z",
            "linux",
            "amd64",
        )
        .await;

    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "cli-pass-7").unwrap();
    rules_for(dir.path(), &reg.addr, &password);
    let out = Command::cargo_bin("tagpromoter")
        .unwrap()
        .env("TAGPROMOTER_CACHE_DIR", dir.path().join("cache"))
        .args(["--rules"])
        .arg(dir.path())
        .args([
            "tags",
            &format!("{}/acme/cli", reg.addr),
            "--digests",
            "--created",
            "--platforms",
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["tags"].as_array().unwrap();
    let row = |t: &str| rows.iter().find(|r| r["tag"] == t).unwrap().clone();
    assert_eq!(row("2.0.0")["digest"], index.digest);
    assert_eq!(
        row("2.0.0")["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );
    assert_eq!(row("2.0.0")["created"], "2026-05-01T00:00:00Z");
    assert_eq!(row("1.0.0")["digest"], single.digest);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("cli-pass-7"));

    // A failure says which registry, which step, and what to check; exit 1.
    std::fs::write(&password, "wrong").unwrap();
    let out = Command::cargo_bin("tagpromoter")
        .unwrap()
        .env("TAGPROMOTER_CACHE_DIR", dir.path().join("cache"))
        .args(["--rules"])
        .arg(dir.path())
        .args(["tags", &format!("{}/acme/cli", reg.addr)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("registry {}", reg.addr))
            && err.contains("listing tags of acme/cli")
            && err.contains("check the credentials"),
        "{err}"
    );
}

#[test]
fn a_tagged_reference_is_refused_with_an_example() {
    let out = Command::cargo_bin("tagpromoter")
        .unwrap()
        .args(["--rules", "/nonexistent", "tags", "ghcr.io/acme/app:1.0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("without a tag"));
}

/// A registry that accepts the connection and never answers costs `--registry-timeout`,
/// not minutes of retries.
#[test]
fn a_hung_registry_fails_within_the_registry_timeout() {
    let hung = crate::support::HungServer::start();
    let dir = tempfile::tempdir().unwrap();
    rules_for(dir.path(), &hung.addr, &dir.path().join("password"));
    std::fs::write(dir.path().join("password"), "x\n").unwrap();
    let started = std::time::Instant::now();
    let out = Command::cargo_bin("tagpromoter")
        .unwrap()
        .arg("--rules")
        .arg(dir.path())
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .args(["--registry-timeout", "2s", "tags"])
        .arg(format!("{}/acme/app", hung.addr))
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no answer within --registry-timeout (2s)"),
        "{err}"
    );
    assert!(elapsed >= std::time::Duration::from_secs(2), "{elapsed:?}");
    assert!(elapsed < std::time::Duration::from_secs(30), "{elapsed:?}");
}
