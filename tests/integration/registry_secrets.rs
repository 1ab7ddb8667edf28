//! No credential ever appears in logs or error messages: passwords, their base64 form in
//! basic auth, docker config contents and bearer tokens, through successes, retries and
//! every kind of failure, with logging at its most verbose.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::oci::Pusher;
use crate::support::proxy::{Fault, Proxy};
use crate::support::token::TokenServer;
use crate::support::{Auth, DockerRegistry};
use base64::Engine;
use tagpromoter::image::{Repository, Tag};
use tagpromoter::registry::credentials::CredentialSource;
use tagpromoter::registry::{HostConfig, Registry, RetryPolicy};

const PASSWORD: &str = "Sup3r-Secret-Passw0rd";
const TOKEN_PASSWORD: &str = "T0ken-Server-Secret";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn client(addr: &str, credentials: CredentialSource) -> Registry {
    let config = HostConfig {
        insecure: true,
        requests_per_second: 1000.0,
        concurrency: 4,
        credentials,
    };
    let retry = RetryPolicy {
        max_retries: 2,
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
    };
    Registry::new(HashMap::from([(addr.to_string(), config)]), retry).unwrap()
}

#[tokio::test]
async fn no_credential_in_logs_or_errors() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::TRACE)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut outputs: Vec<String> = Vec::new();
    let dir = tempfile::tempdir().unwrap();

    // Basic auth, through a proxy that makes the client retry (and log the retries).
    let reg = DockerRegistry::start(Auth::Htpasswd("alice", PASSWORD));
    Pusher::new(&reg.addr)
        .basic("alice", PASSWORD)
        .image(
            "acme/app",
            Some("1.0.0"),
            "2026-01-01T00:00:00Z",
            "linux",
            "amd64",
        )
        .await;
    let proxy = Proxy::start(&reg.addr).await;
    let image = Repository::new(&format!("{}/acme/app", proxy.addr)).unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, PASSWORD).unwrap();
    let good = CredentialSource {
        username: Some("alice".into()),
        password_file: Some(file),
        docker_config: None,
    };
    let c = client(&proxy.addr, good.clone());
    proxy.fault("/tags/list", Fault::Status(500, None));
    proxy.fault("/manifests/", Fault::Truncate);
    c.tags(&image).await.unwrap();
    c.facts(&image, &Tag::new("1.0.0").unwrap()).await.unwrap();
    for _ in 0..5 {
        proxy.fault("/tags/list", Fault::Status(503, None));
    }
    c.new_pass().await;
    outputs.push(format!("{:?}", c.tags(&image).await.unwrap_err()));
    assert!(
        proxy.seen().iter().any(|s| s
            .authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Basic "))),
        "credentials were used"
    );

    // A wrong password in a docker config.
    let config = dir.path().join("config.json");
    let wrong =
        base64::engine::general_purpose::STANDARD.encode(format!("alice:{PASSWORD}-but-wrong"));
    std::fs::write(
        &config,
        format!(r#"{{"auths": {{"{}": {{"auth": "{wrong}"}}}}}}"#, reg.addr),
    )
    .unwrap();
    let c = client(
        &reg.addr,
        CredentialSource {
            docker_config: Some(config.clone()),
            ..Default::default()
        },
    );
    let err = c
        .tags(&Repository::new(&format!("{}/acme/app", reg.addr)).unwrap())
        .await
        .unwrap_err();
    outputs.push(err.to_string());
    outputs.push(format!("{err:?}"));

    // A docker config that is not JSON (its text holds the secret).
    std::fs::write(&config, format!("{{\"auths\": {{\"x\": \"{PASSWORD}")).unwrap();
    let c = client(
        &reg.addr,
        CredentialSource {
            docker_config: Some(config.clone()),
            ..Default::default()
        },
    );
    let err = c
        .tags(&Repository::new(&format!("{}/acme/app", reg.addr)).unwrap())
        .await
        .unwrap_err();
    outputs.push(err.to_string());

    // Bearer tokens: a good run, then refused credentials.
    let tokens = TokenServer::start("bob", TOKEN_PASSWORD).await;
    let treg = DockerRegistry::start(Auth::Token(tokens.realm.clone(), tokens.cert.clone()));
    let push = tokens.push_token("bob", TOKEN_PASSWORD, "acme/tok").await;
    Pusher::new(&treg.addr)
        .bearer(&push)
        .image(
            "acme/tok",
            Some("1.0.0"),
            "2026-01-01T00:00:00Z",
            "linux",
            "amd64",
        )
        .await;
    let timage = Repository::new(&format!("{}/acme/tok", treg.addr)).unwrap();
    std::fs::write(
        &config,
        format!(
            r#"{{"auths": {{"{}": {{"username": "bob", "password": "{TOKEN_PASSWORD}"}}}}}}"#,
            treg.addr
        ),
    )
    .unwrap();
    let c = client(
        &treg.addr,
        CredentialSource {
            docker_config: Some(config.clone()),
            ..Default::default()
        },
    );
    c.facts(&timage, &Tag::new("1.0.0").unwrap()).await.unwrap();
    std::fs::write(
        &config,
        format!(
            r#"{{"auths": {{"{}": {{"username": "bob", "password": "{TOKEN_PASSWORD}x"}}}}}}"#,
            treg.addr
        ),
    )
    .unwrap();
    let c = client(
        &treg.addr,
        CredentialSource {
            docker_config: Some(config),
            ..Default::default()
        },
    );
    outputs.push(c.tags(&timage).await.unwrap_err().to_string());

    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("retrying"),
        "the retries were logged:\n{logged}"
    );
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let secrets = [
        PASSWORD.to_string(),
        TOKEN_PASSWORD.to_string(),
        b64(&format!("alice:{PASSWORD}")),
        b64(&format!("bob:{TOKEN_PASSWORD}")),
        wrong,
        push.clone(),
        push[..40].to_string(),
    ];
    for text in outputs.iter().chain(std::iter::once(&logged)) {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a secret leaked into: {text}"
            );
        }
        assert!(
            !text.contains("Bearer ") && !text.contains("Basic "),
            "an Authorization header leaked into: {text}"
        );
    }
}
