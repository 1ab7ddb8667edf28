//! Alerts: no bump fails or stalls in silence.
//!
//! Detection is one rule per file in [`rules`], each a small function of the pass's report,
//! what [`state::Memory`] remembers of earlier passes, and the time. [`state`] turns the
//! set of firing alerts into notifications — one on firing, one on resolving, a reminder at
//! most every 4 hours — and survives restarts in the cache directory (what cannot be read
//! back starts fresh; `since` is derived from the report where it can be). [`sinks`] deliver
//! them (Alertmanager, JSON webhooks, Slack), one file each behind one trait, and
//! [`delivery`] runs them beside the passes with retries, so a slow or dead sink never
//! holds up a promotion.
//!
//! It must not decide promotions or write to the GitOps repository.

pub mod delivery;
pub mod rules;
pub mod sinks;
pub mod state;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The alerts of DESIGN.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AlertName {
    /// Writing a bump failed.
    PromotionFailed,
    /// An eligible, newer tag has waited longer than `stallAfter`.
    PromotionStalled,
    /// Listing an image's tags failed on 3 passes in a row.
    RegistryUnavailable,
    /// A hold has lasted longer than `holdAlertAfter` while newer eligible tags wait.
    PromotionHeld,
    /// The controller that deploys an environment reports its rollout unhealthy.
    DeploymentUnhealthy,
    /// The controller runs the environment's commit, and not the image its target renders.
    DeploymentMismatch,
}

impl AlertName {
    /// The `alertname` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PromotionFailed => "PromotionFailed",
            Self::PromotionStalled => "PromotionStalled",
            Self::RegistryUnavailable => "RegistryUnavailable",
            Self::PromotionHeld => "PromotionHeld",
            Self::DeploymentUnhealthy => "DeploymentUnhealthy",
            Self::DeploymentMismatch => "DeploymentMismatch",
        }
    }

    /// The `severity` label.
    pub fn severity(self) -> &'static str {
        match self {
            Self::PromotionFailed
            | Self::RegistryUnavailable
            | Self::DeploymentUnhealthy
            | Self::DeploymentMismatch => "critical",
            Self::PromotionStalled => "warning",
            Self::PromotionHeld => "info",
        }
    }
}

/// One firing alert: its labels (name, promotion, environment, image; and the repository)
/// identify it; the rest are annotations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Which alert.
    pub name: AlertName,
    /// The promotion (empty for an image's registry).
    pub promotion: String,
    /// The environment (empty for an image's registry).
    pub environment: String,
    /// The image.
    pub image: String,
    /// The GitOps repository the environment writes to, by name (empty for an image's
    /// registry, or the pass as a whole): a label, so that routes can send each team
    /// the alerts of its own repository.
    #[serde(default)]
    pub repository: String,
    /// Since when the condition holds.
    pub since: Timestamp,
    /// The tag the environment runs.
    pub from: Option<String>,
    /// The tag it should move to.
    pub to: Option<String>,
    /// The failure's class (`auth`, `rejected`, `conflict`, `network`, `target`, …).
    pub class: Option<String>,
    /// What went wrong, in words (never a secret: errors never carry one).
    pub error: Option<String>,
}

impl Alert {
    /// Alert `name` about the environment `d` decided on, holding since `since`: its labels
    /// set, `from` what it runs; the rule fills in the rest.
    pub fn about(name: AlertName, d: &crate::engine::EnvDecision, since: Timestamp) -> Self {
        Self {
            name,
            promotion: d.key.promotion.clone(),
            repository: d.destination.repository.clone(),
            environment: d.key.environment.clone(),
            image: d.image.to_string(),
            since,
            from: d.current.clone(),
            to: None,
            class: None,
            error: None,
        }
    }

    /// What identifies the alert across passes.
    pub fn fingerprint(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.name.as_str(),
            self.promotion,
            self.environment,
            self.image
        )
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        let target = if self.promotion.is_empty() {
            self.image.clone()
        } else {
            format!("{}/{}", self.promotion, self.environment)
        };
        let mut s = format!("{} {target}", self.name.as_str());
        if let (Some(from), Some(to)) = (&self.from, &self.to) {
            s.push_str(&format!(" {from} -> {to}"));
        }
        if let Some(class) = &self.class {
            s.push_str(&format!(" ({class})"));
        }
        if let Some(error) = &self.error {
            s.push_str(&format!(": {error}"));
        }
        s
    }
}

/// What a notification says about an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    /// It started.
    Firing,
    /// It still holds (at most every 4 hours).
    Reminder,
    /// It cleared.
    Resolved,
}

/// One notification to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Firing, reminder or resolved.
    pub event: Event,
    /// The alert.
    pub alert: Alert,
    /// When.
    pub at: Timestamp,
}

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::engine::PassReport;
use crate::metrics::AlertDeliveries;
use crate::rules::Settings;

/// Alerting as a pass sees it: detection, state kept in the cache directory, delivery.
pub struct Alerting {
    memory: state::Memory,
    path: PathBuf,
    dispatcher: delivery::Dispatcher,
    sinks_for: crate::rules::Alerts,
    metrics: AlertDeliveries,
    generator_url: Option<String>,
}

impl Alerting {
    /// Alerting with the sinks of `settings`, its state under `cache_dir`; delivery tasks
    /// start on the current runtime.
    pub fn start(
        settings: &Settings,
        cache_dir: &Path,
        metrics: AlertDeliveries,
    ) -> Result<Self, sinks::SinkError> {
        let path = cache_dir.join("alerts").join("state.json");
        Ok(Self {
            memory: state::Memory::load(&path),
            path,
            dispatcher: delivery::Dispatcher::start(
                sinks::from_settings(&settings.alerts)?,
                metrics.clone(),
            ),
            sinks_for: settings.alerts.clone(),
            metrics,
            generator_url: None,
        })
    }

    /// Point Alertmanager's `generatorURL` at the worker's `/status` under `base`.
    pub fn with_external_url(mut self, base: &str) -> Self {
        self.generator_url = Some(format!("{}/status", base.trim_end_matches('/')));
        self
    }

    /// Detect after a pass, remember, and queue what is due; returns the notifications.
    /// Alertmanager alerts end `3 × interval` ahead unless sent again.
    pub fn after_pass(&mut self, report: &PassReport, settings: &Settings) -> Vec<Notification> {
        if settings.alerts != self.sinks_for {
            match sinks::from_settings(&settings.alerts) {
                Ok(sinks) => {
                    self.dispatcher = delivery::Dispatcher::start(sinks, self.metrics.clone());
                    self.sinks_for = settings.alerts.clone();
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot use the new alert settings; keeping the old")
                }
            }
        }
        self.memory.observe(report);
        let firing = rules::firing(&rules::Context {
            report,
            memory: &self.memory,
            settings,
            now: report.now,
        });
        let notifications = self
            .memory
            .update(firing, report.now, report.error.is_some());
        self.memory.save(&self.path);
        for n in &notifications {
            let event = match n.event {
                Event::Firing => "firing",
                Event::Reminder => "still firing",
                Event::Resolved => "resolved",
            };
            tracing::warn!(
                alert = n.alert.name.as_str(),
                event,
                "{}",
                n.alert.summary()
            );
        }
        let ends_in = settings
            .interval
            .checked_mul(3)
            .unwrap_or(settings.interval)
            .max(jiff::SignedDuration::from_mins(5));
        self.dispatcher.submit(sinks::Batch {
            notifications: notifications.clone(),
            active: self.memory.active().cloned().collect(),
            now: report.now,
            ends_in,
            generator_url: self.generator_url.clone(),
        });
        notifications
    }

    /// Wait up to `deadline` for queued deliveries (`once` calls it before exiting).
    pub async fn flush(&self, deadline: Duration) -> bool {
        self.dispatcher.flush(deadline).await
    }
}
