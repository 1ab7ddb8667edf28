//! JSON webhooks: `POST` of `{"notifications": [...]}` (firing, reminder, resolved), signed
//! with HMAC-SHA256 of the body in `X-Tagpromoter-Signature: sha256=<hex>` when a secret
//! file is set (read at each send, so a rotated secret applies at once).

use std::path::PathBuf;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;

use super::{Batch, Sending, Sink, SinkError, label, post};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Tagpromoter-Signature";

/// A JSON webhook.
pub struct Webhook {
    http: reqwest::Client,
    url: String,
    secret_file: Option<PathBuf>,
    name: String,
}

impl Webhook {
    /// A webhook at `url`, signed with the key in `secret_file` when given.
    pub fn new(http: reqwest::Client, url: &str, secret_file: Option<PathBuf>) -> Self {
        Self {
            http,
            url: url.to_string(),
            secret_file,
            name: label("webhook", url),
        }
    }
}

/// `sha256=<hex>` of `body` under `key` (`None` only if the MAC refused the key, which
/// HMAC never does).
pub fn signature(key: &[u8], body: &[u8]) -> Option<String> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).ok()?;
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(format!("sha256={hex}"))
}

impl Sink for Webhook {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn send<'a>(&'a self, batch: &'a Batch) -> Sending<'a> {
        Box::pin(async move {
            if batch.notifications.is_empty() {
                return Ok(());
            }
            let items: Vec<_> = batch
                .notifications
                .iter()
                .map(|n| {
                    json!({
                        "event": n.event,
                        "at": n.at.to_string(),
                        "alertname": n.alert.name.as_str(),
                        "severity": n.alert.name.severity(),
                        "promotion": n.alert.promotion,
                        "environment": n.alert.environment,
                        "image": n.alert.image,
                        "since": n.alert.since.to_string(),
                        "from": n.alert.from,
                        "to": n.alert.to,
                        "class": n.alert.class,
                        "error": n.alert.error,
                        "summary": n.alert.summary(),
                    })
                })
                .collect();
            let body = serde_json::to_vec(&json!({ "notifications": items })).unwrap_or_default();
            let mut headers = Vec::new();
            if let Some(file) = &self.secret_file {
                let key = std::fs::read(file).map_err(|e| SinkError {
                    sink: self.name.clone(),
                    detail: format!("cannot read the secret file {}: {e}", file.display()),
                    retry: false,
                })?;
                let key = key.strip_suffix(b"\n").unwrap_or(&key);
                let signed = signature(key, &body).ok_or_else(|| SinkError {
                    sink: self.name.clone(),
                    detail: "the secret cannot key an HMAC".into(),
                    retry: false,
                })?;
                headers.push((SIGNATURE_HEADER, signed));
            }
            post(&self.http, &self.name, &self.url, body, &headers).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_rfc_4231_case_2() {
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?").as_deref(),
            Some("sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }
}
