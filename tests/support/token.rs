//! A bearer-token server for distribution's token auth: checks basic auth, answers
//! `{"token": JWT}` signed RS256 with a throwaway key (by the `openssl` command), the
//! certificate in the JWT's `x5c` header, as distribution 2.8 verifies it.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;

use super::http::{self, Req, Resp};
use super::require;

pub struct TokenServer {
    /// `http://127.0.0.1:PORT/token`.
    pub realm: String,
    /// The certificate the registry trusts.
    pub cert: PathBuf,
    /// Token requests answered with a token.
    pub issued: Arc<AtomicUsize>,
    /// Token requests refused.
    pub refused: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

impl TokenServer {
    /// Start a token server that accepts `user`/`password`.
    pub async fn start(user: &'static str, password: &'static str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = dir.path().join("key.pem");
        let cert = dir.path().join("cert.pem");
        let status = Command::new(require("openssl"))
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=test-token-issuer",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl could not make a key");
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .expect("openssl");
        let x5c = base64::engine::general_purpose::STANDARD.encode(&der.stdout);
        let issued = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let (i, r, k) = (Arc::clone(&issued), Arc::clone(&refused), key.clone());
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let handler: http::Handler = Arc::new(move |req: Req| {
            let (i, r, k, x5c, expected) = (
                Arc::clone(&i),
                Arc::clone(&r),
                k.clone(),
                x5c.clone(),
                expected.clone(),
            );
            Box::pin(async move {
                // Basic auth (GET), or an OAuth2 refresh token (POST, from `identitytoken`).
                let form = String::from_utf8_lossy(&req.body).into_owned();
                let refresh_ok = req.method == "POST"
                    && form.split('&').any(|kv| kv == "grant_type=refresh_token")
                    && form
                        .split('&')
                        .any(|kv| kv == format!("refresh_token={password}"));
                if !refresh_ok && req.header("authorization") != Some(expected.as_str()) {
                    r.fetch_add(1, Ordering::SeqCst);
                    return Resp::json(401, r#"{"details":"bad credentials"}"#);
                }
                let access = match req.param("scope") {
                    Some(scope) => {
                        let mut parts = scope.splitn(3, ':');
                        let (kind, name, actions) = (
                            parts.next().unwrap_or(""),
                            parts.next().unwrap_or(""),
                            parts.next().unwrap_or(""),
                        );
                        let actions: Vec<&str> = actions.split(',').collect();
                        serde_json::json!([{"type": kind, "name": name, "actions": actions}])
                    }
                    None => serde_json::json!([]),
                };
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
                let claims = serde_json::json!({
                    "iss": "test-issuer", "sub": user, "aud": req.param("service").unwrap_or_default(),
                    "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", i.load(Ordering::SeqCst)),
                    "access": access,
                });
                let signing_input = format!(
                    "{}.{}",
                    b64url(header.to_string().as_bytes()),
                    b64url(claims.to_string().as_bytes())
                );
                let sig = tokio::process::Command::new("openssl")
                    .args(["dgst", "-sha256", "-sign"])
                    .arg(&k)
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .expect("openssl");
                let sig = {
                    use tokio::io::AsyncWriteExt;
                    let mut child = sig;
                    let mut stdin = child.stdin.take().unwrap();
                    stdin.write_all(signing_input.as_bytes()).await.unwrap();
                    drop(stdin);
                    child.wait_with_output().await.unwrap().stdout
                };
                i.fetch_add(1, Ordering::SeqCst);
                let token = format!("{signing_input}.{}", b64url(&sig));
                Resp::json(
                    200,
                    serde_json::json!({"token": token, "expires_in": 300}).to_string(),
                )
            })
        });
        let addr = http::serve(handler).await;
        Self {
            realm: format!("http://{addr}/token"),
            cert,
            issued,
            refused,
            _dir: dir,
        }
    }

    /// A token for pushing to `repo` (for seeding test images).
    pub async fn push_token(&self, user: &str, password: &str, repo: &str) -> String {
        let resp = reqwest::Client::new()
            .get(&self.realm)
            .query(&[
                ("service", "test-registry"),
                ("scope", &format!("repository:{repo}:pull,push")),
            ])
            .basic_auth(user, Some(password))
            .send()
            .await
            .expect("token request");
        let v: serde_json::Value =
            serde_json::from_slice(&resp.bytes().await.expect("token body")).expect("token json");
        v["token"].as_str().expect("token").to_string()
    }
}
