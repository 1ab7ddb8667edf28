//! Where notifications go: one file per kind of receiver, each behind [`Sink`]. A sink
//! gets every batch (the notifications due, and the alerts firing now) and sends what its
//! receiver wants: Alertmanager takes the firing set again each pass (it deduplicates and
//! resolves by `endsAt` itself), webhooks and Slack take the notifications.
//!
//! Errors never carry a receiver's URL: a Slack or webhook URL is itself a secret.

mod alertmanager;
mod slack;
mod webhook;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

pub use alertmanager::Alertmanager;
pub use slack::Slack;
pub use webhook::{SIGNATURE_HEADER, Webhook};

use super::{Alert, Notification};
use crate::rules::{Alerts, WebhookFormat};

/// What one delivery carries.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Notifications due (firing, reminders, resolved).
    pub notifications: Vec<Notification>,
    /// Every alert firing now.
    pub active: Vec<Alert>,
    /// When the batch was made.
    pub now: Timestamp,
    /// How far ahead firing alerts end unless sent again (Alertmanager's `endsAt`).
    pub ends_in: SignedDuration,
    /// Where people see the alert's source (the worker's `/status`), when known.
    pub generator_url: Option<String>,
}

/// A failed delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sending alerts to {sink} failed: {detail}")]
pub struct SinkError {
    /// The sink's name (`alertmanager`, `webhook`, `slack`) and host.
    pub sink: String,
    /// What went wrong.
    pub detail: String,
    /// Whether trying again may help.
    pub retry: bool,
}

/// A boxed future, for the trait's one method.
pub type Sending<'a> = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>>;

/// A receiver of alerts.
pub trait Sink: Send + Sync {
    /// Its kind, for metrics: `alertmanager`, `webhook`, `slack`.
    fn kind(&self) -> &'static str;
    /// Send what this receiver wants of `batch` (nothing, when there is nothing for it).
    fn send<'a>(&'a self, batch: &'a Batch) -> Sending<'a>;
}

/// The HTTP client sinks share: bounded time per attempt, no redirects.
pub fn client() -> Result<reqwest::Client, SinkError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tagpromoter/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SinkError {
            sink: "alerts".into(),
            detail: format!("cannot build the HTTP client: {e}"),
            retry: false,
        })
}

/// The sinks the settings name.
pub fn from_settings(alerts: &Alerts) -> Result<Vec<Box<dyn Sink>>, SinkError> {
    if alerts.alertmanager.is_none() && alerts.webhooks.is_empty() {
        return Ok(Vec::new());
    }
    let http = client()?;
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if let Some(am) = &alerts.alertmanager {
        sinks.push(Box::new(Alertmanager::new(http.clone(), &am.url)));
    }
    for w in &alerts.webhooks {
        match w.format {
            WebhookFormat::Json => sinks.push(Box::new(Webhook::new(
                http.clone(),
                &w.url,
                w.secret_file.clone(),
            ))),
            WebhookFormat::Slack => sinks.push(Box::new(Slack::new(http.clone(), &w.url))),
        }
    }
    Ok(sinks)
}

/// `kind (host)`: how a sink is named in messages, without the URL's path or query.
fn label(kind: &str, url: &str) -> String {
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
        })
        .unwrap_or_else(|| "?".into());
    format!("{kind} ({host})")
}

/// `body` with every secret the process read hidden ([`crate::secret::redact`]): an error
/// a server echoed a token into goes out without it (before it is signed).
pub(super) fn redacted(body: Vec<u8>) -> Vec<u8> {
    match String::from_utf8(body) {
        Ok(text) => crate::secret::redact(&text).into_owned().into_bytes(),
        Err(e) => e.into_bytes(),
    }
}

/// POST `body` as JSON with `headers`; classify the answer.
async fn post(
    http: &reqwest::Client,
    sink: &str,
    url: &str,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> Result<(), SinkError> {
    let mut req = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let fail = |detail: String, retry| SinkError {
        sink: sink.to_string(),
        detail,
        retry,
    };
    let resp = req.send().await.map_err(|e| {
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "cannot connect"
        } else {
            "the request failed"
        };
        fail(what.into(), true)
    })?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        let retry = status.is_server_error() || status.as_u16() == 429;
        Err(fail(format!("answered {status}"), retry))
    }
}
