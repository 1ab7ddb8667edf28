//! The distribution auth flow: read a `WWW-Authenticate` challenge, and fetch bearer tokens
//! from the realm it names, cached per host and scope until shortly before they expire.
//!
//! Credentials go to the realm only when that cannot leak them: over https, or over plain
//! http only to the same host as an `insecure` registry (a test or in-cluster registry).

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::credentials::{Credential, Secret};

/// What a registry asked for in `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="…"`.
    Basic,
    /// `Bearer realm="…",service="…",scope="…"`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter, if given.
        service: Option<String>,
    },
}

/// Parse a `WWW-Authenticate` header value.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => {
            let params = parse_params(rest);
            Some(Challenge::Bearer {
                realm: params.get("realm")?.clone(),
                service: params.get("service").cloned(),
            })
        }
        _ => None,
    }
}

/// `key="value", key=value` pairs; quoted values may contain commas.
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(q) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            value = v;
            rest = q[end.min(q.len())..].trim_start();
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        rest = rest.trim_start_matches([',', ' ']);
        out.insert(key, value);
    }
    out
}

/// Whether credentials may be sent to the token `realm` of a registry reached at `base`.
pub fn realm_may_receive_credentials(realm: &Url, base: &Url) -> bool {
    match realm.scheme() {
        "https" => true,
        "http" => base.scheme() == "http" && realm.host_str() == base.host_str(),
        _ => false,
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// A token endpoint's answer, read into a token and its lifetime.
pub fn read_token_answer(body: &[u8]) -> Option<(Secret, Duration)> {
    let answer: TokenAnswer = serde_json::from_slice(body).ok()?;
    let token = answer
        .token
        .or(answer.access_token)
        .filter(|t| !t.is_empty())?;
    // The spec's default lifetime is 60 seconds.
    let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(60).clamp(1, 86_400));
    Some((Secret::new(token), lifetime))
}

/// Bearer tokens per (host, scope).
#[derive(Debug, Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<(String, String), (Secret, Instant)>>,
}

impl TokenCache {
    /// A cached token that is still good.
    pub async fn get(&self, host: &str, scope: &str) -> Option<Secret> {
        let tokens = self.tokens.lock().await;
        tokens
            .get(&(host.to_string(), scope.to_string()))
            .filter(|(_, until)| *until > Instant::now())
            .map(|(t, _)| t.clone())
    }

    /// Remember a token for most of its lifetime (renewed at 90%, so it never expires in use).
    pub async fn put(&self, host: &str, scope: &str, token: Secret, lifetime: Duration) {
        let until = Instant::now() + lifetime.mul_f64(0.9);
        self.tokens
            .lock()
            .await
            .insert((host.to_string(), scope.to_string()), (token, until));
    }

    /// Forget a token the registry refused.
    pub async fn forget(&self, host: &str, scope: &str) {
        self.tokens
            .lock()
            .await
            .remove(&(host.to_string(), scope.to_string()));
    }
}

/// The form or query of a token request.
pub fn token_request_params(
    service: Option<&str>,
    scope: &str,
    credential: Option<&Credential>,
) -> Vec<(&'static str, String)> {
    let mut params = Vec::new();
    if let Some(s) = service {
        params.push(("service", s.to_string()));
    }
    params.push(("scope", scope.to_string()));
    if let Some(Credential::IdentityToken(t)) = credential {
        params.push(("grant_type", "refresh_token".to_string()));
        params.push(("refresh_token", t.expose().to_string()));
        params.push(("client_id", "tagpromoter".to_string()));
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge("Basic realm=\"Registry\""),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into())
            })
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn realms_that_may_see_credentials() {
        let https: Url = "https://reg.example".parse().unwrap();
        let http: Url = "http://127.0.0.1:5000".parse().unwrap();
        let ok = |r: &str, b: &Url| realm_may_receive_credentials(&r.parse().unwrap(), b);
        assert!(ok("https://auth.example/token", &https));
        assert!(!ok("http://auth.example/token", &https));
        assert!(ok("http://127.0.0.1:5001/token", &http));
        assert!(!ok("http://evil.example/token", &http));
    }

    #[test]
    fn token_answers() {
        let (t, life) = read_token_answer(br#"{"token":"abc","expires_in":300}"#).unwrap();
        assert_eq!(t.expose(), "abc");
        assert_eq!(life, Duration::from_secs(300));
        let (t, life) = read_token_answer(br#"{"access_token":"xyz"}"#).unwrap();
        assert_eq!((t.expose(), life), ("xyz", Duration::from_secs(60)));
        assert!(read_token_answer(b"<html>").is_none());
    }
}
