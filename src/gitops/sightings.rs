//! The bot's sightings: when tagpromoter first saw each upstream change (a commit that set an
//! environment's value) on its branch, with its tag in the registry. A soak counts from
//! these, never from a commit's own date, which whoever wrote the commit chose.
//!
//! Git stays the only memory the bot writes: the ledger is one file (`sightings`) in the
//! tip commit of `refs/tagpromoter/sightings/<branch>` in the repository of the environment
//! that soaks (the downstream), so a fresh cache finds what a warm one knows. This module
//! owns the ledger's text and what it holds; it reads and writes no Git (the mirror does)
//! and decides nothing (the engine does).

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

/// The ledger's file in its commit's tree.
pub const FILE: &str = "sightings";

/// The remote ref holding the ledger of the environments on `branch`.
pub fn ref_of(branch: &str) -> String {
    format!("refs/tagpromoter/sightings/{branch}")
}

/// What an upstream change is known by: the upstream environment (where it writes:
/// `repository@branch:target`) and the commit that set its value (hex).
pub type Sighted = (String, String);

/// A sighting: when, and the value (tag) the change set.
pub type Seen = (Timestamp, String);

/// The most sightings kept per environment beyond those of the changes read this pass:
/// enough to date the value a history read from part-way holds (by the newest sighting of
/// that value), bounded so that a fleet's ledger stays small.
const KEPT_PER_ENVIRONMENT: usize = 16;

/// When each upstream change was first seen, and what each upstream environment was last
/// seen running.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sightings {
    seen: BTreeMap<Sighted, Seen>,
    /// Per environment, the commit whose value it was last seen running, since when it
    /// was seen running it, and the value (a branch forced back to an older commit runs
    /// that commit's value again only from when it is seen so).
    running: BTreeMap<String, (Timestamp, String, String)>,
    /// Changes seen running again after a change forced off the branch interrupted them,
    /// and when.
    resumed: BTreeMap<Sighted, Seen>,
    /// Verified upstreams: how a change's rollout was last seen, while it was the value
    /// there — healthy since a time (the controller's), or not running healthy at a time.
    rollouts: BTreeMap<Sighted, Rollout>,
}

/// How a change's rollout was last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    /// Healthy: since when (as its controller says); else when it was seen not running
    /// healthy (not rolled out, unhealthy, another image).
    pub at: Timestamp,
    /// The value (tag) the change set.
    pub value: String,
    /// Whether it was seen running healthy.
    pub healthy: bool,
}

/// The last word of a line saying what an environment was last seen running.
const RUNNING: &str = "running";

/// The last word of a line saying when a change was seen running again.
const RESUMED: &str = "resumed";

/// The last words of lines saying how a change's rollout was last seen.
const HEALTHY: &str = "healthy";
const UNHEALTHY: &str = "unhealthy";

impl Sightings {
    /// The ledger written as `text`. A line that does not read as a sighting is left out:
    /// its change counts as first seen now, which can only make a soak longer.
    pub fn parse(text: &str) -> Self {
        let mut ledger = Self::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let (at, commit, environment, value) = match words[..] {
                [at, commit, environment, value] | [at, commit, environment, value, _] => {
                    (at, commit, environment, value)
                }
                _ => continue,
            };
            let (Ok(at), true, true) = (
                at.parse::<Timestamp>(),
                is_hex(commit),
                !environment.is_empty(),
            ) else {
                continue;
            };
            match words.get(4) {
                None => {
                    ledger.seen.insert(
                        (environment.to_string(), commit.to_string()),
                        (at, value.to_string()),
                    );
                }
                Some(&RESUMED) => {
                    ledger.resumed.insert(
                        (environment.to_string(), commit.to_string()),
                        (at, value.to_string()),
                    );
                }
                Some(&(HEALTHY | UNHEALTHY)) => {
                    ledger.rollouts.insert(
                        (environment.to_string(), commit.to_string()),
                        Rollout {
                            at,
                            value: value.to_string(),
                            healthy: words[4] == HEALTHY,
                        },
                    );
                }
                Some(&RUNNING) => {
                    ledger.running.insert(
                        environment.to_string(),
                        (at, commit.to_string(), value.to_string()),
                    );
                }
                Some(_) => {}
            }
        }
        ledger
    }

    /// The ledger's text: a line per sighting, by environment and commit, then a line per
    /// environment saying what it was last seen running.
    pub fn text(&self) -> String {
        let mut text = String::from(
            "# When tagpromoter first saw each upstream change; soaks count from these.\n# Written by tagpromoter: <first seen> <commit> <repository@branch:target> <tag>\n# then <seen running again> <commit> <repository@branch:target> <tag> resumed, for a run a forced branch interrupted,\n# <healthy since> <commit> <repository@branch:target> <tag> healthy, or <seen> ... unhealthy, for a verified rollout as last seen,\n# and, per environment, <seen running since> <commit> <repository@branch:target> <tag> running\n",
        );
        for ((environment, commit), (at, value)) in &self.seen {
            text.push_str(&format!("{at} {commit} {environment} {value}\n"));
        }
        for ((environment, commit), (at, value)) in &self.resumed {
            text.push_str(&format!("{at} {commit} {environment} {value} {RESUMED}\n"));
        }
        for ((environment, commit), r) in &self.rollouts {
            let word = if r.healthy { HEALTHY } else { UNHEALTHY };
            text.push_str(&format!(
                "{} {commit} {environment} {} {word}\n",
                r.at, r.value
            ));
        }
        for (environment, (at, commit, value)) in &self.running {
            text.push_str(&format!("{at} {commit} {environment} {value} {RUNNING}\n"));
        }
        text
    }

    /// What `environment` was last seen running: since when, the commit, and its value.
    pub fn running(&self, environment: &str) -> Option<(Timestamp, &str, &str)> {
        self.running
            .get(environment)
            .map(|(at, commit, value)| (*at, commit.as_str(), value.as_str()))
    }

    /// This ledger saying `environment` runs `commit`'s `value` as seen at `now` (since
    /// when it was already seen running it, if it was).
    pub fn seen_running(
        &self,
        environment: &str,
        commit: &str,
        value: &str,
        now: Timestamp,
    ) -> Self {
        let mut ledger = self.clone();
        let since = match self.running(environment) {
            Some((at, c, _)) if c == commit => at,
            _ => now,
        };
        ledger.running.insert(
            environment.to_string(),
            (since, commit.to_string(), value.to_string()),
        );
        ledger
    }

    /// When `commit` was first seen setting `environment`'s value, if it was.
    pub fn get(&self, environment: &str, commit: &str) -> Option<Timestamp> {
        self.seen
            .get(&(environment.to_string(), commit.to_string()))
            .map(|(at, _)| *at)
    }

    /// The newest sighting of `environment` set to `value` by a commit other than those
    /// of `except`: when the value a history read from part-way holds was seen set (the
    /// commit that set it lies before where the read began).
    pub fn last_of_value(
        &self,
        environment: &str,
        value: &str,
        except: &BTreeSet<&str>,
    ) -> Option<Timestamp> {
        self.seen
            .range((environment.to_string(), String::new())..)
            .take_while(|((e, _), _)| e == environment)
            .filter(|((_, commit), (_, v))| v == value && !except.contains(commit.as_str()))
            .map(|(_, (at, _))| *at)
            .max()
    }

    /// When `commit` was seen running `environment`'s value again after an interruption.
    pub fn resumed(&self, environment: &str, commit: &str) -> Option<Timestamp> {
        self.resumed
            .get(&(environment.to_string(), commit.to_string()))
            .map(|(at, _)| *at)
    }

    /// How `commit`'s rollout in `environment` was last seen, if it was.
    pub fn rollout(&self, environment: &str, commit: &str) -> Option<&Rollout> {
        self.rollouts
            .get(&(environment.to_string(), commit.to_string()))
    }

    /// This ledger with the rollouts seen now: each says whether its change runs healthy,
    /// from no earlier than any time seen before (a run seen unhealthy starts again when
    /// it is seen healthy, and no earlier).
    pub fn with_rollouts(mut self, seen: impl IntoIterator<Item = (Sighted, Rollout)>) -> Self {
        for (key, mut rollout) in seen {
            if let Some(before) = self.rollouts.get(&key) {
                rollout.at = rollout.at.max(before.at);
            }
            self.rollouts.insert(key, rollout);
        }
        self
    }

    /// This ledger with `again`'s changes seen running again (the latest time kept).
    pub fn with_resumed(mut self, again: impl IntoIterator<Item = (Sighted, Seen)>) -> Self {
        for (key, seen) in again {
            let at = self.resumed.entry(key).or_insert(seen.clone());
            if seen.0 > at.0 {
                *at = seen;
            }
        }
        self
    }

    /// How many sightings it holds.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// This ledger with `new` sightings added (one already known keeps its first time).
    /// Of the environments in `read` (the commits of their changes read this pass), the
    /// sightings of other commits are kept only as the newest of each value and at most
    /// [`KEPT_PER_ENVIRONMENT`] of them: a change forgotten and read again counts as seen
    /// then, which can only make a soak longer.
    pub fn updated(
        &self,
        new: impl IntoIterator<Item = (Sighted, Seen)>,
        read: &BTreeMap<String, BTreeSet<String>>,
    ) -> Self {
        let running = self.running.clone();
        // An interruption, and a rollout seen, are kept whatever a read says (a read from
        // part-way may not reach its change, and forgetting it would date that run
        // earlier): the newest few.
        let resumed = newest_few(&self.resumed, |(at, _)| *at, &BTreeMap::new());
        // (A rollout of a change read this pass is kept whatever its age: its word may be
        // all that stops an unhealthy run from counting.)
        let rollouts = newest_few(&self.rollouts, |r| r.at, read);
        let mut seen = self.seen.clone();
        for (key, at) in new {
            seen.entry(key).or_insert(at);
        }
        for (environment, commits) in read {
            // (Keys sort by environment first: its sightings are one range.)
            let mut others: Vec<(Sighted, Seen)> = seen
                .range((environment.clone(), String::new())..)
                .take_while(|((e, _), _)| e == environment)
                .filter(|((_, c), _)| !commits.contains(c))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            // Newest first: the first of each value is the one kept.
            others.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| a.0.cmp(&b.0)));
            let mut values = BTreeSet::new();
            let mut kept = 0;
            for (key, (_, value)) in others {
                if kept < KEPT_PER_ENVIRONMENT && values.insert(value) {
                    kept += 1;
                } else {
                    seen.remove(&key);
                }
            }
        }
        Self {
            seen,
            running,
            resumed,
            rollouts,
        }
    }
}

/// `entries` keeping, per environment, those of the commits `read` this pass and the
/// [`KEPT_PER_ENVIRONMENT`] newest (by `time`) of the others.
fn newest_few<T: Clone>(
    entries: &BTreeMap<Sighted, T>,
    time: impl Fn(&T) -> Timestamp,
    read: &BTreeMap<String, BTreeSet<String>>,
) -> BTreeMap<Sighted, T> {
    let mut kept = entries.clone();
    let environments: BTreeSet<&String> = entries.keys().map(|(e, _)| e).collect();
    for environment in environments {
        let reading = read.get(environment);
        let mut of: Vec<(&Sighted, Timestamp)> = entries
            .iter()
            .filter(|((e, c), _)| e == environment && !reading.is_some_and(|r| r.contains(c)))
            .map(|(k, v)| (k, time(v)))
            .collect();
        of.sort_by_key(|(_, at)| std::cmp::Reverse(*at));
        for (key, _) in of.into_iter().skip(KEPT_PER_ENVIRONMENT) {
            kept.remove(key);
        }
    }
    kept
}

fn is_hex(text: &str) -> bool {
    (4..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn seen(text: &str, value: &str) -> Seen {
        (at(text), value.to_string())
    }

    #[test]
    fn a_ledger_reads_back_what_it_wrote_and_ignores_what_is_not_a_sighting() {
        let key = |e: &str, c: &str| (e.to_string(), c.to_string());
        let ledger = Sightings::default().updated(
            [
                (
                    key("app/dev", "4f5e7c1d"),
                    seen("2026-11-20T10:00:00Z", "1.1.0"),
                ),
                (
                    key("app/staging", "0a1b2c3d"),
                    seen("2026-11-21T10:00:00Z", "1.0.0"),
                ),
            ],
            &BTreeMap::new(),
        );
        let rollout = |at_: &str, healthy| Rollout {
            at: at(at_),
            value: "1.1.0".into(),
            healthy,
        };
        let ledger = ledger
            .with_rollouts([(
                key("app/dev", "4f5e7c1d"),
                rollout("2026-11-20T11:00:00Z", true),
            )])
            .with_rollouts([(
                key("app/dev", "4f5e7c1d"),
                rollout("2026-11-20T10:30:00Z", false),
            )]);
        assert_eq!(
            ledger.rollout("app/dev", "4f5e7c1d"),
            Some(&rollout("2026-11-20T11:00:00Z", false)),
            "the last word, from no earlier than any before"
        );
        let text = ledger.text();
        assert_eq!(Sightings::parse(&text), ledger);
        let damaged = format!(
            "{text}not a line\n2026-11-22T10:00:00Z nothex app/dev 1.0.0\n2026-11-22T10:00:00Z 4f5e7c1d app/dev 1.0.0 running extra\n2026-11-22T10:00:00Z 4f5e7c1d app/dev\n"
        );
        assert_eq!(Sightings::parse(&damaged), ledger);
        assert_eq!(
            ledger.get("app/dev", "4f5e7c1d"),
            Some(at("2026-11-20T10:00:00Z"))
        );
        assert_eq!(ledger.get("app/prod", "4f5e7c1d"), None);
    }

    /// Found by a fresh-eyes review: an unhealthy sighting of a change still read is kept
    /// however many newer rollouts followed it.
    #[test]
    fn a_rollout_of_a_change_still_read_is_kept_however_many_followed() {
        let key = |c: &str| ("app/dev".to_string(), c.to_string());
        let mut ledger = Sightings::default().with_rollouts([(
            key("00000"),
            Rollout {
                at: at("2026-11-20T10:00:00Z"),
                value: "1.1.0".into(),
                healthy: false,
            },
        )]);
        for i in 1..=20u32 {
            ledger = ledger.with_rollouts([(
                key(&format!("{i:05x}")),
                Rollout {
                    at: at("2026-11-20T11:00:00Z") + jiff::SignedDuration::from_mins(i.into()),
                    value: format!("1.{}.0", i + 1),
                    healthy: false,
                },
            )]);
        }
        let read = BTreeMap::from([("app/dev".to_string(), BTreeSet::from(["00000".to_string()]))]);
        let kept = ledger.updated([], &read);
        assert!(
            kept.rollout("app/dev", "00000").is_some(),
            "the oldest, still read"
        );
        let forgotten = ledger.updated([], &BTreeMap::new());
        assert!(
            forgotten.rollout("app/dev", "00000").is_none(),
            "no longer read: the newest few"
        );
    }

    #[test]
    fn a_first_sighting_is_kept_and_of_changes_no_longer_read_the_newest_of_each_value() {
        let key = |e: &str, c: &str| (e.to_string(), c.to_string());
        let first = Sightings::default().updated(
            [
                (
                    key("app/dev", "aaaa"),
                    seen("2026-11-20T10:00:00Z", "1.0.0"),
                ),
                (
                    key("app/dev", "abab"),
                    seen("2026-11-20T10:30:00Z", "1.0.0"),
                ),
                (
                    key("app/dev", "bbbb"),
                    seen("2026-11-20T11:00:00Z", "1.1.0"),
                ),
                (
                    key("other/dev", "cccc"),
                    seen("2026-11-20T11:00:00Z", "2.0.0"),
                ),
            ],
            &BTreeMap::new(),
        );
        let read = BTreeMap::from([(
            "app/dev".to_string(),
            BTreeSet::from(["bbbb".to_string(), "dddd".to_string()]),
        )]);
        let next = first.updated(
            [
                (
                    key("app/dev", "bbbb"),
                    seen("2026-11-25T00:00:00Z", "1.1.0"),
                ),
                (
                    key("app/dev", "dddd"),
                    seen("2026-11-25T00:00:00Z", "1.2.0"),
                ),
            ],
            &read,
        );
        assert_eq!(
            next.get("app/dev", "aaaa"),
            None,
            "an older sighting of 1.0.0"
        );
        assert_eq!(
            next.last_of_value("app/dev", "1.0.0", &BTreeSet::from(["bbbb", "dddd"])),
            Some(at("2026-11-20T10:30:00Z")),
            "the newest of 1.0.0 dates a history read from part-way"
        );
        assert_eq!(
            next.get("app/dev", "bbbb"),
            Some(at("2026-11-20T11:00:00Z")),
            "first seen stays first"
        );
        assert_eq!(
            next.get("other/dev", "cccc"),
            Some(at("2026-11-20T11:00:00Z")),
            "not read this time: kept"
        );
        assert_eq!(next.len(), 4);
    }
}
