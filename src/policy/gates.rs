//! Promotion gates: given a ranking of candidate tags, what an environment should do now.
//!
//! A candidate is *eligible* when it is old enough (`minAge`), has every required platform,
//! and, with `from: E`, has run in `E` for at least `soak`. The best eligible tag is promoted
//! unless the environment is held, the tag would be a downgrade, or a freeze window is
//! open. Everything comes in as arguments, "now" included; nothing here reads a clock.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;

use jiff::{SignedDuration, Timestamp};

use super::freeze::{self, FreezeWindow};
use super::select::{Selection, TagPolicy, Unordered, Unranked};
use super::timeline::Timeline;
use crate::image::{Depth, Digest, ImageFacts, Tag};

/// The most better-ranked tags a decision lists with what holds each back: the best ones
/// are what people ask about, and a long tag list would otherwise hold hundreds per
/// environment.
pub const MAX_WAITING: usize = 10;

/// The gate settings of one environment.
#[derive(Debug, Clone, Default)]
pub struct Gates {
    /// The upstream environment whose history a tag needs, if any.
    pub from: Option<String>,
    /// How long the upstream must have run a tag.
    pub soak: SignedDuration,
    /// How old an image must be (by its config's `created`).
    pub min_age: Option<SignedDuration>,
    /// Platforms an image index must have (`linux/amd64`).
    pub platforms: Vec<String>,
    /// Windows without automatic promotion.
    pub freeze: Vec<FreezeWindow>,
    /// Whether the digest is written too: then only a digest that soaked upstream goes.
    pub pin_digest: bool,
}

/// A hold on an environment (set by a rollback), until released or until `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// When it began (the commit that set it).
    pub since: Timestamp,
    /// When it expires by itself, if ever.
    pub until: Option<Timestamp>,
    /// Who set it.
    pub by: String,
    /// Why, when they said.
    pub reason: Option<String>,
    /// When a person released it, if they did.
    pub released: Option<Timestamp>,
}

impl Hold {
    /// Whether it still holds at `now`.
    pub fn active(&self, now: Timestamp) -> bool {
        self.released.is_none() && self.until.is_none_or(|u| u > now)
    }

    /// When it stopped holding, if it has by `now`: tags waiting behind it became
    /// applicable then, and their stall clock starts no earlier.
    pub fn ended(&self, now: Timestamp) -> Option<Timestamp> {
        self.released.or(self.until.filter(|u| *u <= now))
    }
}

/// Everything about the environment's present that a decision depends on, as data.
pub struct Situation<'a> {
    /// The current time.
    pub now: Timestamp,
    /// The tag the environment runs now (as read from its target).
    pub current: Option<&'a Tag>,
    /// The last hold, active, expired or released (`None` after the bot moved on).
    pub hold: Option<&'a Hold>,
    /// What the upstream environment (`from`) ran over time.
    pub upstream: Option<&'a Timeline>,
    /// Facts of the tags' images that were inspected this pass.
    pub facts: &'a HashMap<Tag, ImageFacts>,
}

/// Why a candidate is not (yet) eligible.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// The upstream environment never ran it.
    NotUpstream {
        /// The upstream environment.
        env: String,
    },
    /// The upstream environment moved past it without running it (from an older tag to a
    /// newer one): it can never soak there, and nothing newer may suit this policy.
    Skipped {
        /// The upstream environment.
        env: String,
        /// What the upstream runs instead.
        runs: String,
        /// Since when.
        since: Timestamp,
    },
    /// The upstream runs it, but not for long enough yet.
    Soaking {
        /// When the soak completes.
        until: Timestamp,
    },
    /// The upstream ran it, and replaced it before the soak completed.
    SoakInterrupted {
        /// The longest time it ran there.
        ran_for: SignedDuration,
    },
    /// The image is younger than `minAge`.
    TooYoung {
        /// When it is old enough.
        until: Timestamp,
    },
    /// `minAge` is set and the image has no creation time.
    NoCreationTime,
    /// The index lacks required platforms.
    MissingPlatforms {
        /// The platforms missing.
        missing: Vec<String>,
    },
    /// Platforms are required and the image names none.
    PlatformsUnknown,
    /// The gates need the image's facts and they were not read this pass.
    NotInspected,
    /// The upstream environment was rolled back from it and has not run it since.
    RolledBack {
        /// The upstream environment.
        env: String,
    },
    /// The tag was re-pushed after it soaked: the registry's digest is not one that ran
    /// upstream (with `pinDigest`, only a soaked digest goes on).
    DigestNotSoaked {
        /// The upstream environment.
        env: String,
        /// What ran there.
        soaked: Digest,
        /// What the registry has now.
        now: Digest,
    },
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotUpstream { env } => write!(f, "{env} has not run it"),
            Self::Skipped { env, runs, since } => write!(
                f,
                "{env} skipped it: it moved on to {runs} at {since} without running it, so it cannot soak there; run it in {env} (`tagpromoter promote … --env {env} --tag …`), or widen this environment's policy to take what {env} runs"
            ),
            Self::Soaking { until } => write!(f, "soaking until {until}"),
            Self::SoakInterrupted { ran_for } => {
                write!(
                    f,
                    "replaced upstream after {ran_for:#}, before its soak completed"
                )
            }
            Self::TooYoung { until } => write!(f, "younger than minAge until {until}"),
            Self::NoCreationTime => f.write_str("has no creation time, so minAge cannot hold"),
            Self::MissingPlatforms { missing } => {
                write!(f, "lacks platforms {}", missing.join(", "))
            }
            Self::PlatformsUnknown => f.write_str("its platforms are not known"),
            Self::NotInspected => f.write_str("its image metadata could not be read"),
            Self::RolledBack { env } => {
                write!(f, "{env} was rolled back from it and has not run it since")
            }
            Self::DigestNotSoaked { env, soaked, now } => write!(
                f,
                "re-pushed since it soaked: {env} ran {soaked}, the registry now has {now}; it goes on once {env} has run the new digest for the soak"
            ),
        }
    }
}

/// A better tag than the one chosen, and what it waits for.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    /// The tag.
    pub tag: Tag,
    /// What holds it back.
    pub block: Block,
}

/// Why an eligible tag is not applied.
#[derive(Debug, Clone, PartialEq)]
pub enum Blocked {
    /// A freeze window is open.
    Frozen {
        /// When it closes.
        until: Timestamp,
    },
    /// The environment is held.
    Held(Hold),
    /// The best eligible tag ranks below the current one.
    Downgrade {
        /// The current tag.
        current: Tag,
    },
    /// The order cannot tell whether the best eligible tag is above the current one (under
    /// `newestBuild`, the running tag's creation time is unknown): in doubt, nothing moves.
    Unknown {
        /// Why the order cannot compare them.
        why: Unordered,
    },
    /// No candidate is eligible yet.
    NothingEligible,
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Frozen { until } => write!(f, "frozen until {until}"),
            Self::Held(h) => {
                write!(f, "held by {} since {}", h.by, h.since)?;
                if let Some(r) = &h.reason {
                    write!(f, " ({r})")?;
                }
                match h.until {
                    Some(u) => write!(f, ", until {u}"),
                    None => f.write_str(", until released"),
                }
            }
            Self::Downgrade { current } => {
                write!(
                    f,
                    "it ranks below the current {current}; no automatic downgrade"
                )
            }
            Self::Unknown { why } => write!(
                f,
                "cannot tell whether it is newer than what runs: {why} (deleted from the registry, or its metadata could not be read); `promote --tag` decides by hand"
            ),
            Self::NothingEligible => f.write_str("no tag is eligible"),
        }
    }
}

/// What an environment should do now. `waiting` lists the candidates ranked above the
/// outcome (the best [`MAX_WAITING`]), best first, with what holds each back.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// It runs the best eligible tag.
    UpToDate {
        /// The tag.
        current: Tag,
        /// Better tags that are not eligible yet.
        waiting: Vec<Waiting>,
    },
    /// It should move to `to`.
    Promote {
        /// The current tag.
        from: Option<Tag>,
        /// The tag to write.
        to: Tag,
        /// Since when `to` could have been applied (the latest of its creation, its soak
        /// completing, and a freeze ending), for stall detection.
        eligible_since: Option<Timestamp>,
        /// Better tags that are not eligible yet.
        waiting: Vec<Waiting>,
    },
    /// It should not move now.
    Blocked {
        /// The tag it would move to, if one is eligible.
        to: Option<Tag>,
        /// Since when `to` has been eligible.
        eligible_since: Option<Timestamp>,
        /// Why not.
        reason: Blocked,
        /// Better tags that are not eligible yet.
        waiting: Vec<Waiting>,
    },
}

impl Decision {
    /// The better tags that wait, and why.
    pub fn waiting(&self) -> &[Waiting] {
        match self {
            Self::UpToDate { waiting, .. }
            | Self::Promote { waiting, .. }
            | Self::Blocked { waiting, .. } => waiting,
        }
    }
}

impl Gates {
    /// Whether deciding needs the images' facts (`minAge`, `platforms`).
    pub fn need_facts(&self) -> bool {
        self.min_age.is_some() || !self.platforms.is_empty()
    }

    /// Decide for one environment. `policy` ranks tags (for the downgrade check),
    /// `selection` is its ranking of the tag list.
    pub fn decide(
        &self,
        policy: &TagPolicy,
        selection: &Selection<Tag>,
        s: &Situation<'_>,
    ) -> Decision {
        let created = |tag: &str| crate::image::created_of(s.facts, tag);
        let mut waiting = Vec::new();
        let mut best = None;
        // Only tags above what runs are waiting; those below it wait for nothing.
        let mut above_current = true;
        for candidate in &selection.candidates {
            let running = s.current == Some(&candidate.tag);
            match self.eligibility(&candidate.tag, s) {
                Ok(since) => {
                    best = Some((candidate.tag.clone(), since));
                    break;
                }
                Err(block) if above_current && !running && waiting.len() < MAX_WAITING => waiting
                    .push(Waiting {
                        tag: candidate.tag.clone(),
                        block,
                    }),
                Err(_) => {}
            }
            above_current &= !running;
        }
        self.mark_skipped(policy, s, &mut waiting);
        // Kept in the decision for the whole pass (thousands of them): no spare room.
        waiting.shrink_to_fit();
        let Some((to, since)) = best else {
            return Decision::Blocked {
                to: None,
                eligible_since: None,
                reason: Blocked::NothingEligible,
                waiting,
            };
        };
        // Where `to` stands against what runs, by the order alone (not the range or filter).
        let standing = s
            .current
            .map(|current| policy.order(to.as_str(), current.as_str(), &created));
        if let Some(current) = s.current
            && (*current == to || standing == Some(Ok(Ordering::Equal)))
        {
            return Decision::UpToDate {
                current: current.clone(),
                waiting,
            };
        }
        let freeze_end = self.freeze.iter().filter_map(|w| w.last_ended(s.now)).max();
        let hold_end = s.hold.and_then(|h| h.ended(s.now));
        let eligible_since = [since, freeze_end, hold_end].into_iter().flatten().max();
        let blocked = |reason| Decision::Blocked {
            to: Some(to.clone()),
            eligible_since,
            reason,
            waiting: waiting.clone(),
        };
        if let Some(hold) = s.hold
            && hold.active(s.now)
        {
            return blocked(Blocked::Held(hold.clone()));
        }
        match (s.current, standing) {
            (Some(current), Some(Ok(Ordering::Less))) => {
                return blocked(Blocked::Downgrade {
                    current: current.clone(),
                });
            }
            // Not knowing when the running build was made is not knowing it is older.
            (_, Some(Err(why))) if why.why == Unranked::NoCreationTime => {
                return blocked(Blocked::Unknown { why });
            }
            // A value the order cannot place at all (`latest` under semver) was set by a
            // person or `promote`, and their change carries a hold; once released, moving
            // on is what they asked for.
            _ => {}
        }
        if let Some(until) = freeze::frozen_until(&self.freeze, s.now) {
            return blocked(Blocked::Frozen { until });
        }
        Decision::Promote {
            from: s.current.cloned(),
            to,
            eligible_since,
            waiting,
        }
    }

    /// Tags waiting for an upstream that has already moved past them (it runs a tag above
    /// them, by this policy's order, and never ran them) will wait forever: say so.
    fn mark_skipped(&self, policy: &TagPolicy, s: &Situation<'_>, waiting: &mut [Waiting]) {
        let (Some(env), Some(running)) = (&self.from, s.upstream.and_then(Timeline::running))
        else {
            return;
        };
        let Some(runs) = s.upstream.and_then(Timeline::current) else {
            return;
        };
        let created = |tag: &str| crate::image::created_of(s.facts, tag);
        for w in waiting.iter_mut() {
            if matches!(w.block, Block::NotUpstream { .. })
                && policy.order(runs, w.tag.as_str(), &created) == Ok(Ordering::Greater)
            {
                w.block = Block::Skipped {
                    env: env.clone(),
                    runs: runs.to_string(),
                    since: running.since,
                };
            }
        }
    }

    /// `Ok(since)` when `tag` passes every gate (with when it became eligible, if known).
    /// `from` is checked first: it needs no image metadata, so the registry is asked about
    /// a tag only once it has soaked upstream, however many newer tags wait.
    pub fn eligibility(&self, tag: &Tag, s: &Situation<'_>) -> Result<Option<Timestamp>, Block> {
        let soaked = match &self.from {
            Some(env) => Some(self.soaked(env, tag, s)?),
            None => None,
        };
        let facts = s.facts.get(tag);
        // `minAge` and `platforms` read the config: a digest alone is not enough.
        let whole = facts.filter(|f| f.depth == Depth::Whole);
        if let Some(min_age) = self.min_age {
            let facts = whole.ok_or(Block::NotInspected)?;
            let created = facts.created.ok_or(Block::NoCreationTime)?;
            let old_enough = created.checked_add(min_age).unwrap_or(Timestamp::MAX);
            if old_enough > s.now {
                return Err(Block::TooYoung { until: old_enough });
            }
        }
        if !self.platforms.is_empty() {
            let facts = whole.ok_or(Block::NotInspected)?;
            if facts.platforms.is_empty() {
                return Err(Block::PlatformsUnknown);
            }
            let missing: Vec<String> = self
                .platforms
                .iter()
                .filter(|p| {
                    !facts
                        .platforms
                        .iter()
                        .any(|offered| super::platform::satisfies(offered, p))
                })
                .cloned()
                .collect();
            if !missing.is_empty() {
                return Err(Block::MissingPlatforms { missing });
            }
        }
        Ok(facts.and_then(|f| f.created).max(soaked))
    }

    /// When `tag` completed its soak in `env`, or why it has not.
    fn soaked(&self, env: &str, tag: &Tag, s: &Situation<'_>) -> Result<Timestamp, Block> {
        let runs = s.upstream.map(|t| t.residencies(tag)).unwrap_or_default();
        let Some(last) = runs.last() else {
            return Err(Block::NotUpstream {
                env: env.to_string(),
            });
        };
        if last.rolled_back {
            return Err(Block::RolledBack {
                env: env.to_string(),
            });
        }
        // Residencies long enough, by when each completed its soak.
        let mut soaked: Vec<(Timestamp, Option<&Digest>)> = Vec::new();
        let mut longest = SignedDuration::ZERO;
        let mut ongoing = None;
        // A run that ended in a rollback is no evidence: it soaks again.
        for r in runs.iter().filter(|r| !r.rolled_back) {
            let end = r.until.unwrap_or(s.now);
            let ran = end.duration_since(r.since);
            longest = longest.max(ran);
            if ran >= self.soak {
                let done = r.since.checked_add(self.soak).unwrap_or(Timestamp::MAX);
                soaked.push((done, r.digest.as_ref()));
            } else if r.until.is_none() {
                ongoing = Some(r.since.checked_add(self.soak).unwrap_or(Timestamp::MAX));
            }
        }
        if soaked.is_empty() {
            return Err(match ongoing {
                Some(until) => Block::Soaking { until },
                None => Block::SoakInterrupted { ran_for: longest },
            });
        }
        if self.pin_digest {
            // The digest to write must be one that ran (or one whose run is unrecorded).
            let now = &s.facts.get(tag).ok_or(Block::NotInspected)?.digest;
            soaked.retain(|(_, d)| d.is_none_or(|d| d == now));
            if soaked.is_empty() {
                let ran = runs.iter().rev().find_map(|r| r.digest.clone());
                return Err(match ongoing {
                    Some(until) => Block::Soaking { until },
                    None => Block::DigestNotSoaked {
                        env: env.to_string(),
                        soaked: ran.unwrap_or_else(|| now.clone()),
                        now: now.clone(),
                    },
                });
            }
        }
        Ok(soaked.iter().map(|(t, _)| *t).min().unwrap_or(s.now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Digest;
    use crate::policy::{Change, Constraint, Order};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn tag(s: &str) -> Tag {
        Tag::new(s).unwrap()
    }

    fn semver() -> TagPolicy {
        TagPolicy {
            exclude: vec![],
            filter: None,
            order: Order::Semver {
                range: Constraint::parse("^6.0.0").unwrap(),
                loose: false,
            },
        }
    }

    fn facts(created: &str, platforms: &[&str]) -> ImageFacts {
        ImageFacts {
            digest: Digest::new(&format!("sha256:{}", "0".repeat(64))).unwrap(),
            platforms: platforms.iter().map(|p| p.to_string()).collect(),
            created: Some(ts(created)),
            labels: Default::default(),
            depth: Depth::Whole,
        }
    }

    /// staging ran 6.5.4 from 11-20 to 11-21 06:00, and runs 6.6.0 since.
    fn staging() -> Timeline {
        Timeline {
            changes: vec![
                Change::to(ts("2026-11-20T00:00:00Z"), "6.5.4"),
                Change::to(ts("2026-11-21T06:00:00Z"), "6.6.0"),
            ],
        }
    }

    fn decide(gates: &Gates, current: Option<&str>, hold: Option<&Hold>, now: &str) -> Decision {
        let policy = semver();
        let list = vec![tag("6.5.3"), tag("6.5.4"), tag("6.6.0")];
        let selection = policy.select(&list, &|_| None);
        let upstream = staging();
        let facts = list
            .iter()
            .map(|t| (t.clone(), facts("2026-11-19T00:00:00Z", &[])))
            .collect();
        let current = current.map(tag);
        gates.decide(
            &policy,
            &selection,
            &Situation {
                now: ts(now),
                current: current.as_ref(),
                hold,
                upstream: Some(&upstream),
                facts: &facts,
            },
        )
    }

    fn prod() -> Gates {
        Gates {
            from: Some("staging".into()),
            soak: SignedDuration::from_hours(24),
            ..Gates::default()
        }
    }

    fn hold(until: Option<&str>) -> Hold {
        Hold {
            since: ts("2026-11-21T00:00:00Z"),
            until: until.map(ts),
            by: "alice".into(),
            reason: Some("incident 42".into()),
            released: None,
        }
    }

    #[test]
    fn soak_picks_the_tag_that_soaked_and_names_the_one_waiting() {
        let d = decide(&prod(), Some("6.5.3"), None, "2026-11-21T12:00:00Z");
        let waiting = vec![Waiting {
            tag: tag("6.6.0"),
            block: Block::Soaking {
                until: ts("2026-11-22T06:00:00Z"),
            },
        }];
        assert_eq!(
            d,
            Decision::Promote {
                from: Some(tag("6.5.3")),
                to: tag("6.5.4"),
                eligible_since: Some(ts("2026-11-21T00:00:00Z")),
                waiting: waiting.clone(),
            }
        );
        let d = decide(&prod(), Some("6.5.4"), None, "2026-11-21T12:00:00Z");
        assert_eq!(
            d,
            Decision::UpToDate {
                current: tag("6.5.4"),
                waiting
            }
        );
        let d = decide(&prod(), Some("6.5.4"), None, "2026-11-22T06:00:00Z");
        assert!(
            matches!(d, Decision::Promote { ref to, .. } if to.as_str() == "6.6.0"),
            "{d:?}"
        );
    }

    #[test]
    fn interrupted_soak_never_qualifies() {
        let gates = Gates {
            soak: SignedDuration::from_hours(48),
            ..prod()
        };
        let upstream = Timeline {
            changes: vec![
                Change::to(ts("2026-11-20T00:00:00Z"), "6.5.4"),
                Change::to(ts("2026-11-21T00:00:00Z"), "6.5.3"),
            ],
        };
        let facts = HashMap::new();
        let s = Situation {
            now: ts("2026-11-30T00:00:00Z"),
            current: None,
            hold: None,
            upstream: Some(&upstream),
            facts: &facts,
        };
        assert_eq!(
            gates.eligibility(&tag("6.5.4"), &s),
            Err(Block::SoakInterrupted {
                ran_for: SignedDuration::from_hours(24)
            })
        );
        assert_eq!(
            gates.eligibility(&tag("6.6.0"), &s),
            Err(Block::NotUpstream {
                env: "staging".into()
            })
        );
    }

    #[test]
    fn no_automatic_downgrade() {
        let d = decide(&prod(), Some("6.7.0"), None, "2026-11-21T12:00:00Z");
        assert!(
            matches!(
                d,
                Decision::Blocked {
                    reason: Blocked::Downgrade { .. },
                    ..
                }
            ),
            "{d:?}"
        );
    }

    #[test]
    fn holds_block_until_they_expire() {
        let h = hold(Some("2026-11-21T18:00:00Z"));
        let d = decide(&prod(), Some("6.5.3"), Some(&h), "2026-11-21T12:00:00Z");
        assert!(
            matches!(&d, Decision::Blocked { reason: Blocked::Held(got), .. } if *got == h),
            "{d:?}"
        );
        let d = decide(&prod(), Some("6.5.3"), Some(&h), "2026-11-21T18:00:00Z");
        assert!(matches!(d, Decision::Promote { .. }), "{d:?}");
        let forever = hold(None);
        let d = decide(
            &prod(),
            Some("6.5.3"),
            Some(&forever),
            "2027-11-21T18:00:00Z",
        );
        let Decision::Blocked {
            reason: reason @ Blocked::Held(_),
            ..
        } = d
        else {
            panic!("{d:?}")
        };
        assert_eq!(
            reason.to_string(),
            "held by alice since 2026-11-21T00:00:00Z (incident 42), until released"
        );
    }

    #[test]
    fn a_hold_that_ended_starts_the_stall_clock_no_earlier() {
        let released = Hold {
            released: Some(ts("2026-11-21T10:00:00Z")),
            ..hold(None)
        };
        let d = decide(
            &prod(),
            Some("6.5.3"),
            Some(&released),
            "2026-11-21T12:00:00Z",
        );
        assert!(
            matches!(d, Decision::Promote { eligible_since: Some(t), .. } if t == ts("2026-11-21T10:00:00Z")),
            "{d:?}"
        );
        let expired = hold(Some("2026-11-21T11:00:00Z"));
        let d = decide(
            &prod(),
            Some("6.5.3"),
            Some(&expired),
            "2026-11-21T12:00:00Z",
        );
        assert!(
            matches!(d, Decision::Promote { eligible_since: Some(t), .. } if t == ts("2026-11-21T11:00:00Z")),
            "{d:?}"
        );
    }

    #[test]
    fn freeze_blocks_and_counts_as_eligibility_start() {
        let mut gates = prod();
        gates.freeze = vec![FreezeWindow::parse("Fri 16:00", "Mon 08:00", "UTC").unwrap()];
        // 2026-11-21 is a Saturday.
        let d = decide(&gates, Some("6.5.3"), None, "2026-11-21T12:00:00Z");
        assert_eq!(
            d,
            Decision::Blocked {
                to: Some(tag("6.5.4")),
                eligible_since: Some(ts("2026-11-21T00:00:00Z")),
                reason: Blocked::Frozen {
                    until: ts("2026-11-23T08:00:00Z")
                },
                waiting: vec![Waiting {
                    tag: tag("6.6.0"),
                    block: Block::Soaking {
                        until: ts("2026-11-22T06:00:00Z")
                    }
                }],
            }
        );
        let d = decide(&gates, Some("6.5.4"), None, "2026-11-23T09:00:00Z");
        assert!(
            matches!(d, Decision::Promote { eligible_since: Some(t), .. } if t == ts("2026-11-23T08:00:00Z")),
            "{d:?}"
        );
    }

    #[test]
    fn min_age_and_platforms() {
        let gates = Gates {
            min_age: Some(SignedDuration::from_mins(15)),
            platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
            ..Gates::default()
        };
        assert!(gates.need_facts());
        let now = ts("2026-11-21T12:00:00Z");
        let check = |f: Option<ImageFacts>| {
            let facts: HashMap<Tag, ImageFacts> =
                f.into_iter().map(|f| (tag("6.5.4"), f)).collect();
            let s = Situation {
                now,
                current: None,
                hold: None,
                upstream: None,
                facts: &facts,
            };
            gates.eligibility(&tag("6.5.4"), &s)
        };
        assert_eq!(check(None), Err(Block::NotInspected));
        let mut undated = facts("2026-11-21T11:00:00Z", &["linux/amd64"]);
        undated.created = None;
        assert_eq!(check(Some(undated)), Err(Block::NoCreationTime));
        assert_eq!(
            check(Some(facts("2026-11-21T11:50:00Z", &[]))),
            Err(Block::TooYoung {
                until: ts("2026-11-21T12:05:00Z")
            })
        );
        assert_eq!(
            check(Some(facts("2026-11-21T11:00:00Z", &[]))),
            Err(Block::PlatformsUnknown)
        );
        // A single-platform image lists its one platform: not enough here.
        assert_eq!(
            check(Some(facts("2026-11-21T11:00:00Z", &["linux/amd64"]))),
            Err(Block::MissingPlatforms {
                missing: vec!["linux/arm64".into()]
            })
        );
        assert_eq!(
            check(Some(facts(
                "2026-11-21T11:00:00Z",
                &["linux/arm64", "linux/amd64"]
            ))),
            Ok(Some(ts("2026-11-21T11:00:00Z")))
        );
    }

    #[test]
    fn waiting_lists_the_best_few_blocked_tags() {
        let policy = semver();
        let list: Vec<Tag> = (0..30).map(|i| tag(&format!("6.{i}.0"))).collect();
        let selection = policy.select(&list, &|_| None);
        let facts = HashMap::new();
        let upstream = Timeline::default();
        let d = prod().decide(
            &policy,
            &selection,
            &Situation {
                now: ts("2026-11-21T12:00:00Z"),
                current: None,
                hold: None,
                upstream: Some(&upstream),
                facts: &facts,
            },
        );
        let waiting = d.waiting();
        assert_eq!(waiting.len(), MAX_WAITING);
        assert_eq!(waiting[0].tag.as_str(), "6.29.0");
        assert_eq!(waiting[9].tag.as_str(), "6.20.0");
    }
}
