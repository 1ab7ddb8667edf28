//! Alertmanager's v2 API: `POST /api/v2/alerts` with every firing alert (its `endsAt` a few
//! intervals ahead, so alerts resolve on their own when tagpromoter stops reporting) and
//! the resolved ones (`endsAt` now). Labels: alertname, promotion, environment, image,
//! severity; annotations: from, to, since, class, error, summary; `generatorURL` the
//! worker's `/status` when `run --external-url` says where people reach it.

use serde_json::{Map, Value, json};

use super::{Batch, Sending, Sink, label, post};
use crate::alert::{Alert, Event};

/// An Alertmanager.
pub struct Alertmanager {
    http: reqwest::Client,
    url: String,
    name: String,
}

impl Alertmanager {
    /// The Alertmanager at `base` (e.g. `http://alertmanager.monitoring:9093`).
    pub fn new(http: reqwest::Client, base: &str) -> Self {
        Self {
            http,
            url: format!("{}/api/v2/alerts", base.trim_end_matches('/')),
            name: label("alertmanager", base),
        }
    }
}

fn entry(alert: &Alert, ends_at: jiff::Timestamp, generator: Option<&str>) -> Value {
    let mut labels = Map::new();
    for (k, v) in [
        ("alertname", alert.name.as_str()),
        ("promotion", alert.promotion.as_str()),
        ("environment", alert.environment.as_str()),
        ("image", alert.image.as_str()),
        ("repository", alert.repository.as_str()),
        ("severity", alert.name.severity()),
    ] {
        // Alertmanager treats an empty value as no label; leave it out.
        if !v.is_empty() {
            labels.insert(k.into(), Value::String(v.into()));
        }
    }
    let mut annotations = Map::new();
    annotations.insert("summary".into(), Value::String(alert.summary()));
    annotations.insert("since".into(), Value::String(alert.since.to_string()));
    for (k, v) in [
        ("from", &alert.from),
        ("to", &alert.to),
        ("class", &alert.class),
        ("error", &alert.error),
    ] {
        if let Some(v) = v {
            annotations.insert(k.into(), Value::String(v.clone()));
        }
    }
    let mut entry = json!({
        "labels": labels,
        "annotations": annotations,
        "startsAt": alert.since.to_string(),
        "endsAt": ends_at.to_string(),
    });
    if let Some(url) = generator {
        entry["generatorURL"] = Value::String(url.to_string());
    }
    entry
}

impl Sink for Alertmanager {
    fn kind(&self) -> &'static str {
        "alertmanager"
    }

    fn send<'a>(&'a self, batch: &'a Batch) -> Sending<'a> {
        Box::pin(async move {
            let ends = batch.now.checked_add(batch.ends_in).unwrap_or(batch.now);
            let generator = batch.generator_url.as_deref();
            let mut list: Vec<Value> = batch
                .active
                .iter()
                .map(|a| entry(a, ends, generator))
                .collect();
            list.extend(
                batch
                    .notifications
                    .iter()
                    .filter(|n| n.event == Event::Resolved)
                    .map(|n| entry(&n.alert, n.at, generator)),
            );
            if list.is_empty() {
                return Ok(());
            }
            let body = super::redacted(serde_json::to_vec(&list).unwrap_or_default());
            post(&self.http, &self.name, &self.url, body, &[]).await
        })
    }
}
