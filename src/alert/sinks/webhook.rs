//! JSON webhooks: `POST` of `{"notifications": [...]}` (firing, reminder, resolved), signed
//! with HMAC-SHA256 of the body in `X-Tagpromoter-Signature: sha256=<hex>` when a secret
//! file is set (read at each send, so a rotated secret applies at once).

use std::path::PathBuf;

use serde_json::json;

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
                        "repository": n.alert.repository,
                        "since": n.alert.since.to_string(),
                        "from": n.alert.from,
                        "to": n.alert.to,
                        "class": n.alert.class,
                        "error": n.alert.error,
                        "summary": n.alert.summary(),
                    })
                })
                .collect();
            let body = super::redacted(
                serde_json::to_vec(&json!({ "notifications": items })).unwrap_or_default(),
            );
            let mut headers = Vec::new();
            if let Some(file) = &self.secret_file {
                let key = crate::secret::read(file).map_err(|e| SinkError {
                    sink: self.name.clone(),
                    detail: format!("alerts.webhooks[].secretFile: {e}"),
                    retry: false,
                })?;
                let signed =
                    crate::secret::sign(key.as_bytes(), &body).ok_or_else(|| SinkError {
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
