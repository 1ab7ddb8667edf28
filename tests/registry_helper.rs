//! `credHelpers` / `credsStore`: credentials from `docker-credential-<name> get`, the host
//! passed on stdin (never in arguments). Its own test binary, because it puts a fake helper
//! on PATH for the whole process.

mod support;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;

use support::oci::Pusher;
use support::{Auth, DockerRegistry};
use tagpromoter::image::Repository;
use tagpromoter::registry::credentials::CredentialSource;
use tagpromoter::registry::{HostConfig, Registry, RetryPolicy};

#[tokio::test]
async fn credential_helpers_are_asked_with_the_host_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let asked = dir.path().join("asked");
    let helper = dir.path().join("docker-credential-testhelper");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread host\necho \"$host $#\" >> {}\necho '{{\"ServerURL\":\"'$host'\",\"Username\":\"carol\",\"Secret\":\"helper-pass-3\"}}'\n",
            asked.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // SAFETY: this test binary has this one test, and no other thread reads the environment
    // while it is changed (the runtime is single-threaded and the registry not started yet).
    unsafe { std::env::set_var("PATH", path) };

    let reg = DockerRegistry::start(Auth::Htpasswd("carol", "helper-pass-3"));
    Pusher::new(&reg.addr)
        .basic("carol", "helper-pass-3")
        .image(
            "acme/helped",
            Some("1.0.0"),
            "2026-01-01T00:00:00Z",
            "linux",
            "amd64",
        )
        .await;
    for config_text in [
        format!(r#"{{"credHelpers": {{"{}": "testhelper"}}}}"#, reg.addr),
        r#"{"credsStore": "testhelper"}"#.to_string(),
    ] {
        let config = dir.path().join("config.json");
        std::fs::write(&config, config_text).unwrap();
        let host = HostConfig {
            insecure: true,
            credentials: CredentialSource {
                docker_config: Some(config),
                ..Default::default()
            },
            ..HostConfig::default()
        };
        let c = Registry::new(
            HashMap::from([(reg.addr.clone(), host)]),
            RetryPolicy::default(),
        )
        .unwrap();
        let list = c
            .tags(&Repository::new(&format!("{}/acme/helped", reg.addr)).unwrap())
            .await
            .unwrap();
        assert_eq!(list.tags.len(), 1);
    }
    let asked = std::fs::read_to_string(asked).unwrap();
    let expected = format!("{} 1\n", reg.addr);
    assert!(
        asked.lines().count() >= 2 && asked.lines().all(|l| format!("{l}\n") == expected),
        "{asked}"
    );
}
