//! Promotion gates: given a ranking of candidate tags, what an environment should do now.
//!
//! A candidate is *eligible* when it is old enough (`minAge`), has every required platform,
//! and, with `from: E`, has run in `E` for at least `soak`. The best eligible tag is promoted
//! unless the environment is held, the tag would be a downgrade, or a freeze window is
//! open. Everything comes in as arguments, "now" included; nothing here reads a clock.

use std::cmp::Ordering;
use std::fmt;

use jiff::{SignedDuration, Timestamp};

use super::freeze::{self, FreezeWindow};
use super::select::{Selection, TagPolicy};

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
}

/// What is known about one tag's image.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TagFacts {
    /// The config's `created` time.
    pub created: Option<Timestamp>,
    /// The platforms of its index (`None` when not fetched or not an index).
    pub platforms: Option<Vec<String>>,
}

/// A period during which an environment ran a tag: from the commit that put it there to the
/// commit that replaced it (`None`: it still runs it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Residency {
    /// When the tag arrived.
    pub since: Timestamp,
    /// When it was replaced, if it was.
    pub until: Option<Timestamp>,
}

/// A hold on an environment (set by a rollback), until released or until `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// When it expires by itself, if ever.
    pub until: Option<Timestamp>,
}

/// Everything about the environment's present that a decision depends on.
pub struct Situation<'a> {
    /// The current time.
    pub now: Timestamp,
    /// The tag the environment runs now (as read from its target).
    pub current: Option<&'a str>,
    /// An active or expired hold.
    pub hold: Option<&'a Hold>,
    /// When the upstream environment ran a tag.
    pub upstream: &'a dyn Fn(&str) -> Vec<Residency>,
    /// Metadata of a tag's image.
    pub facts: &'a dyn Fn(&str) -> TagFacts,
}

/// Why a candidate is not (yet) eligible.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// The upstream environment never ran it.
    NotUpstream {
        /// The upstream environment.
        env: String,
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
    /// Platforms are required and the image's are not known.
    PlatformsUnknown,
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotUpstream { env } => write!(f, "{env} has not run it"),
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
        }
    }
}

/// A better tag than the one chosen, and what it waits for.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    /// The tag.
    pub tag: String,
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
    Held {
        /// When the hold expires, if ever.
        until: Option<Timestamp>,
    },
    /// The best eligible tag ranks below the current one.
    Downgrade {
        /// The current tag.
        current: String,
    },
    /// No candidate is eligible yet.
    NothingEligible,
}

/// What an environment should do now.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// It runs the best eligible tag.
    UpToDate {
        /// The tag.
        current: String,
        /// A better tag that is not eligible yet, if any.
        waiting: Option<Waiting>,
    },
    /// It should move to `to`.
    Promote {
        /// The current tag.
        from: Option<String>,
        /// The tag to write.
        to: String,
        /// Since when `to` could have been applied (the latest of its creation, its soak
        /// completing, and a freeze ending), for stall detection.
        eligible_since: Option<Timestamp>,
    },
    /// It should not move now.
    Blocked {
        /// The tag it would move to, if one is eligible.
        to: Option<String>,
        /// Why not.
        reason: Blocked,
        /// A better tag that is not eligible yet, if any.
        waiting: Option<Waiting>,
    },
}

impl Gates {
    /// Decide for one environment. `policy` ranks tags (for the downgrade check), `selection`
    /// is its ranking of the tag list.
    pub fn decide(&self, policy: &TagPolicy, selection: &Selection, s: &Situation<'_>) -> Decision {
        let created = |tag: &str| (s.facts)(tag).created;
        let mut waiting = None;
        let mut best = None;
        for candidate in &selection.candidates {
            match self.eligibility(&candidate.tag, s) {
                Ok(since) => {
                    best = Some((candidate.tag.clone(), since));
                    break;
                }
                Err(block) => {
                    if waiting.is_none() {
                        waiting = Some(Waiting {
                            tag: candidate.tag.clone(),
                            block,
                        });
                    }
                }
            }
        }
        let Some((to, since)) = best else {
            return Decision::Blocked {
                to: None,
                reason: Blocked::NothingEligible,
                waiting,
            };
        };
        if let Some(current) = s.current {
            let same =
                current == to || policy.compare(&to, current, &created) == Some(Ordering::Equal);
            if same {
                return Decision::UpToDate {
                    current: current.to_string(),
                    waiting,
                };
            }
        }
        let blocked = |reason| Decision::Blocked {
            to: Some(to.clone()),
            reason,
            waiting: waiting.clone(),
        };
        if let Some(hold) = s.hold
            && hold.until.is_none_or(|u| u > s.now)
        {
            return blocked(Blocked::Held { until: hold.until });
        }
        if let Some(current) = s.current
            && policy.compare(&to, current, &created) == Some(Ordering::Less)
        {
            return blocked(Blocked::Downgrade {
                current: current.to_string(),
            });
        }
        if let Some(until) = freeze::frozen_until(&self.freeze, s.now) {
            return blocked(Blocked::Frozen { until });
        }
        let freeze_end = self.freeze.iter().filter_map(|w| w.last_ended(s.now)).max();
        Decision::Promote {
            from: s.current.map(str::to_string),
            to,
            eligible_since: [since, freeze_end].into_iter().flatten().max(),
        }
    }

    /// `Ok(since)` when `tag` passes every gate (with when it became eligible, if known).
    pub fn eligibility(&self, tag: &str, s: &Situation<'_>) -> Result<Option<Timestamp>, Block> {
        let facts = (s.facts)(tag);
        let mut since = facts.created;
        if let Some(min_age) = self.min_age {
            let created = facts.created.ok_or(Block::NoCreationTime)?;
            let old_enough = created.checked_add(min_age).unwrap_or(Timestamp::MAX);
            if old_enough > s.now {
                return Err(Block::TooYoung { until: old_enough });
            }
        }
        if !self.platforms.is_empty() {
            let have = facts.platforms.as_ref().ok_or(Block::PlatformsUnknown)?;
            let missing: Vec<String> = self
                .platforms
                .iter()
                .filter(|p| !have.contains(p))
                .cloned()
                .collect();
            if !missing.is_empty() {
                return Err(Block::MissingPlatforms { missing });
            }
        }
        if let Some(env) = &self.from {
            let runs = (s.upstream)(tag);
            if runs.is_empty() {
                return Err(Block::NotUpstream { env: env.clone() });
            }
            let mut soaked_at: Option<Timestamp> = None;
            let mut longest = SignedDuration::ZERO;
            let mut ongoing = None;
            for r in &runs {
                let end = r.until.unwrap_or(s.now);
                let ran = end.duration_since(r.since);
                longest = longest.max(ran);
                if ran >= self.soak {
                    let done = r.since.checked_add(self.soak).unwrap_or(Timestamp::MAX);
                    soaked_at = Some(soaked_at.map_or(done, |d| d.min(done)));
                } else if r.until.is_none() {
                    ongoing = Some(r.since.checked_add(self.soak).unwrap_or(Timestamp::MAX));
                }
            }
            match (soaked_at, ongoing) {
                (Some(done), _) => since = since.max(Some(done)),
                (None, Some(until)) => return Err(Block::Soaking { until }),
                (None, None) => return Err(Block::SoakInterrupted { ran_for: longest }),
            }
        }
        Ok(since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Constraint, Order};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn semver() -> TagPolicy {
        TagPolicy {
            exclude: vec![],
            filter: None,
            order: Order::Semver(Constraint::parse("^6.0.0").unwrap()),
        }
    }

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn decide(gates: &Gates, current: Option<&str>, hold: Option<&Hold>, now: &str) -> Decision {
        let policy = semver();
        let selection = policy
            .select(&tags(&["6.5.3", "6.5.4", "6.6.0"]), &|_| None)
            .unwrap();
        let upstream = |tag: &str| match tag {
            "6.5.4" => vec![Residency {
                since: ts("2026-11-20T00:00:00Z"),
                until: Some(ts("2026-11-21T06:00:00Z")),
            }],
            "6.6.0" => vec![Residency {
                since: ts("2026-11-21T06:00:00Z"),
                until: None,
            }],
            _ => vec![],
        };
        let facts = |_: &str| TagFacts {
            created: Some(ts("2026-11-19T00:00:00Z")),
            platforms: None,
        };
        gates.decide(
            &policy,
            &selection,
            &Situation {
                now: ts(now),
                current,
                hold,
                upstream: &upstream,
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

    #[test]
    fn soak_picks_the_tag_that_soaked_and_names_the_one_waiting() {
        let d = decide(&prod(), Some("6.5.3"), None, "2026-11-21T12:00:00Z");
        assert_eq!(
            d,
            Decision::Promote {
                from: Some("6.5.3".into()),
                to: "6.5.4".into(),
                eligible_since: Some(ts("2026-11-21T00:00:00Z")),
            }
        );
        let d = decide(&prod(), Some("6.5.4"), None, "2026-11-21T12:00:00Z");
        let Decision::UpToDate {
            waiting: Some(w), ..
        } = d
        else {
            panic!("{d:?}")
        };
        assert_eq!(
            w.block,
            Block::Soaking {
                until: ts("2026-11-22T06:00:00Z")
            }
        );
        let d = decide(&prod(), Some("6.5.4"), None, "2026-11-22T06:00:00Z");
        assert!(
            matches!(d, Decision::Promote { ref to, .. } if to == "6.6.0"),
            "{d:?}"
        );
    }

    #[test]
    fn interrupted_soak_never_qualifies() {
        let gates = Gates {
            soak: SignedDuration::from_hours(48),
            ..prod()
        };
        let policy = semver();
        let s = Situation {
            now: ts("2026-11-30T00:00:00Z"),
            current: None,
            hold: None,
            upstream: &|_| {
                vec![Residency {
                    since: ts("2026-11-20T00:00:00Z"),
                    until: Some(ts("2026-11-21T00:00:00Z")),
                }]
            },
            facts: &|_| TagFacts::default(),
        };
        assert!(matches!(
            gates.eligibility("6.5.4", &s),
            Err(Block::SoakInterrupted { .. })
        ));
        let _ = policy;
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
        let hold = Hold {
            until: Some(ts("2026-11-21T18:00:00Z")),
        };
        let d = decide(&prod(), Some("6.5.3"), Some(&hold), "2026-11-21T12:00:00Z");
        assert!(
            matches!(
                d,
                Decision::Blocked {
                    reason: Blocked::Held { .. },
                    ..
                }
            ),
            "{d:?}"
        );
        let d = decide(&prod(), Some("6.5.3"), Some(&hold), "2026-11-21T18:00:00Z");
        assert!(matches!(d, Decision::Promote { .. }), "{d:?}");
        let forever = Hold { until: None };
        let d = decide(
            &prod(),
            Some("6.5.3"),
            Some(&forever),
            "2027-11-21T18:00:00Z",
        );
        assert!(matches!(
            d,
            Decision::Blocked {
                reason: Blocked::Held { until: None },
                ..
            }
        ));
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
                to: Some("6.5.4".into()),
                reason: Blocked::Frozen {
                    until: ts("2026-11-23T08:00:00Z")
                },
                waiting: Some(Waiting {
                    tag: "6.6.0".into(),
                    block: Block::Soaking {
                        until: ts("2026-11-22T06:00:00Z")
                    }
                }),
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
        let now = ts("2026-11-21T12:00:00Z");
        let check = |facts: TagFacts| {
            let f = move |_: &str| facts.clone();
            let s = Situation {
                now,
                current: None,
                hold: None,
                upstream: &|_| vec![],
                facts: &f,
            };
            gates.eligibility("6.5.4", &s)
        };
        assert_eq!(check(TagFacts::default()), Err(Block::NoCreationTime));
        let young = TagFacts {
            created: Some(ts("2026-11-21T11:50:00Z")),
            platforms: None,
        };
        assert_eq!(
            check(young),
            Err(Block::TooYoung {
                until: ts("2026-11-21T12:05:00Z")
            })
        );
        let one = TagFacts {
            created: Some(ts("2026-11-21T11:00:00Z")),
            platforms: Some(vec!["linux/amd64".into()]),
        };
        assert_eq!(
            check(one),
            Err(Block::MissingPlatforms {
                missing: vec!["linux/arm64".into()]
            })
        );
        let both = TagFacts {
            created: Some(ts("2026-11-21T11:00:00Z")),
            platforms: Some(vec!["linux/arm64".into(), "linux/amd64".into()]),
        };
        assert_eq!(check(both), Ok(Some(ts("2026-11-21T11:00:00Z"))));
    }
}
