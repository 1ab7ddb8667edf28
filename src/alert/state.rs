//! What alerting remembers between passes: the alerts that fire (to notify once on firing,
//! once on resolving, and remind at most every [`REMINDER`]), and the consecutive failed
//! listings per image. Kept in the cache directory as one JSON file written whole; a missing
//! or damaged file starts fresh (alerts then fire again once, with their `since` derived
//! from the report where it can be).

use std::collections::BTreeMap;
use std::path::Path;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::{Alert, Event, Notification};
use crate::engine::{PassReport, Problem};

/// The longest an alert goes without a notification while it fires.
pub const REMINDER: SignedDuration = SignedDuration::from_hours(4);

/// Consecutive failed listings of one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListingFailure {
    /// Passes in a row.
    pub passes: u32,
    /// When the first of them ran.
    pub since: Timestamp,
    /// The class of the last failure.
    pub class: String,
    /// The last failure, in words.
    pub error: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Active {
    alert: Alert,
    last_sent: Timestamp,
}

/// Alert state across passes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Memory {
    active: BTreeMap<String, Active>,
    listings: BTreeMap<String, ListingFailure>,
}

impl Memory {
    /// Read the state kept at `path`; fresh when there is none or it cannot be read.
    pub fn load(path: &Path) -> Self {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "the alert state cannot be read; starting fresh");
                Self::default()
            }),
            Err(_) => Self::default(),
        }
    }

    /// Keep the state at `path`, whole or not at all. A disk that refuses costs only a
    /// repeated notification after a restart, so it is logged, not raised.
    pub fn save(&self, path: &Path) {
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
            std::fs::write(
                &tmp,
                serde_json::to_vec(self).map_err(std::io::Error::other)?,
            )?;
            std::fs::rename(&tmp, path)
        };
        if let Err(e) = write() {
            tracing::warn!(path = %path.display(), error = %e, "cannot keep the alert state");
        }
    }

    /// Count this pass's listings: a failed one extends the image's run of failures, a
    /// successful one ends it. A pass that could not read the repository counts nothing.
    pub fn observe(&mut self, report: &PassReport) {
        let mut failed: BTreeMap<String, (String, String)> = BTreeMap::new();
        let mut listed: Vec<String> = Vec::new();
        // Only what this pass listed counts (a webhook's pass lists some images; the rest
        // of its report is carried over from earlier passes).
        let listed_now = report
            .environments
            .iter()
            .filter(|e| report.scope.covers(&e.decision.key.promotion));
        for e in listed_now {
            let image = e.decision.image.to_string();
            match &e.decision.outcome {
                Err(Problem::Registry(r)) => {
                    failed.insert(image, (r.kind.as_str().to_string(), r.to_string()));
                }
                _ => listed.push(image),
            }
        }
        for image in listed {
            if !failed.contains_key(&image) {
                self.listings.remove(&image);
            }
        }
        for (image, (class, error)) in failed {
            let entry = self.listings.entry(image).or_insert(ListingFailure {
                passes: 0,
                since: report.now,
                class: class.clone(),
                error: error.clone(),
            });
            entry.passes += 1;
            entry.class = class;
            entry.error = error;
        }
    }

    /// Images whose listings are failing, with their run of failures.
    pub fn listing_failures(&self) -> impl Iterator<Item = (&str, &ListingFailure)> {
        self.listings.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// `alert`, with the `since` it had when it started firing, if it fires already.
    pub fn keep_since(&self, mut alert: Alert) -> Alert {
        if let Some(a) = self.active.get(&alert.fingerprint()) {
            alert.since = a.alert.since;
        }
        alert
    }

    /// The alerts firing now.
    pub fn active(&self) -> impl Iterator<Item = &Alert> {
        self.active.values().map(|a| &a.alert)
    }

    /// Take the alerts that fire after a pass; the notifications due. With `blind` (the
    /// pass could not see the environments), alerts about environments are kept as they
    /// are rather than resolved.
    pub fn update(&mut self, firing: Vec<Alert>, now: Timestamp, blind: bool) -> Vec<Notification> {
        let mut out = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for alert in firing {
            let key = alert.fingerprint();
            seen.insert(key.clone());
            match self.active.get_mut(&key) {
                None => {
                    out.push(Notification {
                        event: Event::Firing,
                        alert: alert.clone(),
                        at: now,
                    });
                    self.active.insert(
                        key,
                        Active {
                            alert,
                            last_sent: now,
                        },
                    );
                }
                Some(active) => {
                    active.alert = alert;
                    if active
                        .last_sent
                        .checked_add(REMINDER)
                        .is_ok_and(|t| t <= now)
                    {
                        active.last_sent = now;
                        out.push(Notification {
                            event: Event::Reminder,
                            alert: active.alert.clone(),
                            at: now,
                        });
                    }
                }
            }
        }
        let gone: Vec<String> = self
            .active
            .iter()
            .filter(|(k, a)| {
                // Unseen environments were not looked at when the pass was blind.
                let unseen_env = blind && !a.alert.promotion.is_empty();
                !seen.contains(*k) && !unseen_env
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            if let Some(a) = self.active.remove(&key) {
                out.push(Notification {
                    event: Event::Resolved,
                    alert: a.alert,
                    at: now,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertName;

    fn alert(error: &str) -> Alert {
        Alert {
            name: AlertName::PromotionFailed,
            promotion: "app".into(),
            repository: "default".into(),
            environment: "prod".into(),
            image: "acme/app".into(),
            since: "2026-11-22T00:00:00Z".parse().unwrap(),
            from: Some("1.0.0".into()),
            to: Some("1.1.0".into()),
            class: Some("rejected".into()),
            error: Some(error.into()),
        }
    }

    fn at(h: i64) -> Timestamp {
        "2026-11-22T00:00:00Z".parse::<Timestamp>().unwrap() + SignedDuration::from_hours(h)
    }

    #[test]
    fn one_notification_on_firing_reminders_every_four_hours_one_on_resolving() {
        let mut m = Memory::default();
        let events = |n: Vec<Notification>| n.into_iter().map(|n| n.event).collect::<Vec<_>>();
        assert_eq!(
            events(m.update(vec![alert("a")], at(0), false)),
            [Event::Firing]
        );
        assert!(m.update(vec![alert("b")], at(1), false).is_empty());
        assert_eq!(
            events(m.update(vec![alert("b")], at(4), false)),
            [Event::Reminder]
        );
        assert!(m.update(vec![alert("b")], at(5), false).is_empty());
        // A pass that could not see the environments resolves nothing.
        assert!(m.update(vec![], at(6), true).is_empty());
        let resolved = m.update(vec![], at(7), false);
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].event, Event::Resolved);
        assert_eq!(resolved[0].alert.error.as_deref(), Some("b"));
        assert_eq!(m.active().count(), 0);
    }

    #[test]
    fn the_state_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.json");
        let mut m = Memory::default();
        m.update(vec![alert("a")], at(0), false);
        m.save(&path);
        let mut back = Memory::load(&path);
        assert!(
            back.update(vec![alert("a")], at(1), false).is_empty(),
            "no second firing"
        );
        std::fs::write(&path, "{ damaged").unwrap();
        assert_eq!(Memory::load(&path).active().count(), 0);
    }
}
