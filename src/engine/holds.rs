//! Holds, read from history: a rollback by `promote` (our trailer `Tagpromoter-Hold: set`)
//! or a person's own commit that sets a target to a value the policy's order places below
//! the one before, or cannot place at all; lifted by `release` (`Tagpromoter-Hold:
//! released`) or by its expiry. The order is the policy's alone, never its range or filter:
//! a person's hotfix outside `^1.0.0` is still below 1.1.0. In doubt, a person's value
//! holds. Pure: the history comes in as data.

use std::cmp::Ordering;

use jiff::Timestamp;

use crate::gitops::message::{Actor, HoldChange, Record};
use crate::policy::{Hold, TagPolicy, Unranked};

/// One commit of an environment's history, as far as holds care.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The commit time.
    pub time: Timestamp,
    /// The commit's author.
    pub author: String,
    /// Our record for this environment's target, if the commit is one.
    pub record: Option<Record>,
    /// When the commit changed the target's value: (before, after); `before` is `None`
    /// where the value first appeared.
    pub moved: Option<(Option<String>, Option<String>)>,
}

impl Event {
    /// Whether no hold before this commit can still be in force after it: the bot wrote
    /// automatically (it never does while held), a person released, or the target came
    /// into being here (a file or key added: nothing before it was this target's).
    pub fn resets(&self) -> bool {
        let created = matches!(&self.moved, Some((None, Some(_))));
        created
            || self.record.as_ref().is_some_and(|r| {
                r.hold == Some(HoldChange::Released) || (r.actor == Actor::Bot && r.hold.is_none())
            })
    }
}

/// The last hold after `events` (oldest first), if any: in force, expired or released (the
/// gates know that those no longer hold, and when they stopped). `None` once the bot wrote
/// after it. `created` gives creation times
/// (`newestBuild` orders by them).
pub fn hold_after(
    events: &[Event],
    policy: &TagPolicy,
    created: &dyn Fn(&str) -> Option<Timestamp>,
) -> Option<Hold> {
    let mut hold: Option<Hold> = None;
    for e in events {
        let hold_change = e.record.as_ref().and_then(|r| r.hold.as_ref());
        if hold_change == Some(&HoldChange::Released) {
            // The release says when holding ended, whether or not the history read shows
            // the hold itself (it may lie before where reading stopped).
            let h = hold.get_or_insert_with(|| Hold {
                since: e.time,
                until: None,
                by: e.author.clone(),
                reason: None,
                released: None,
            });
            h.released = h.released.or(Some(e.time));
        } else if e.resets() {
            hold = None;
        }
        if let Some(set) = hold_set_by(e, policy, created) {
            hold = Some(set);
        }
    }
    hold
}

/// Whether `promote` writing `to` over `current` sets a hold. A person wins when in doubt:
/// anything the order cannot show to be forward from what runs (lower, or not comparable)
/// holds, so that the next pass keeps it.
pub fn promote_holds(
    policy: &TagPolicy,
    to: &str,
    current: Option<&str>,
    created: &dyn Fn(&str) -> Option<Timestamp>,
) -> bool {
    current.is_some_and(|c| {
        !matches!(
            policy.order(to, c, created),
            Ok(Ordering::Greater | Ordering::Equal)
        )
    })
}

/// When `events` moved the environment back (the commits that set a hold): a tag it was
/// rolled back from does not flow downstream until it runs that tag again.
pub fn rollbacks(
    events: &[Event],
    policy: &TagPolicy,
    created: &dyn Fn(&str) -> Option<Timestamp>,
) -> Vec<Timestamp> {
    events
        .iter()
        .filter(|e| e.moved.is_some() && hold_set_by(e, policy, created).is_some())
        .map(|e| e.time)
        .collect()
}

/// The hold one commit sets: ours says so (`Tagpromoter-Hold: set`); a person's sets one
/// when the value it writes is below the one before, or has no place in the order.
fn hold_set_by(
    e: &Event,
    policy: &TagPolicy,
    created: &dyn Fn(&str) -> Option<Timestamp>,
) -> Option<Hold> {
    if let Some(record) = &e.record {
        let Some(HoldChange::Set { until }) = &record.hold else {
            return None;
        };
        return Some(Hold {
            since: e.time,
            until: *until,
            by: match &record.actor {
                Actor::Person(who) => who.clone(),
                Actor::Bot => "tagpromoter".into(),
            },
            reason: record.reason.clone(),
            released: None,
        });
    }
    let (before, after) = e.moved.as_ref()?;
    // A person took the value out (a Kustomize entry removed, so the base's image runs):
    // writing it back would undo them.
    let Some(after) = after else {
        return before.as_ref().map(|before| Hold {
            since: e.time,
            until: None,
            by: e.author.clone(),
            reason: Some(format!(
                "removed by hand (it was {before}); `tagpromoter release` lets the bot write it again"
            )),
            released: None,
        });
    };
    let reason = match (before, policy.ranks(after, created)) {
        // A first value whose build time is unknown is no choice against anything.
        (None, Err(u)) if u.why == Unranked::NoCreationTime => return None,
        (_, Err(unordered)) => {
            format!("set by hand to {after}, which the policy cannot order ({unordered})")
        }
        (Some(before), Ok(())) => match policy.order(after, before, created) {
            Ok(Ordering::Less) => format!("rolled back by hand from {before} to {after}"),
            _ => return None,
        },
        (None, Ok(())) => return None,
    };
    Some(Hold {
        since: e.time,
        until: None,
        by: e.author.clone(),
        reason: Some(reason),
        released: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{Repository, Tag};
    use crate::policy::{Constraint, Order};

    fn record(hold: Option<HoldChange>) -> Record {
        Record {
            promotion: "app".into(),
            environment: "prod".into(),
            image: Repository::new("acme/app").unwrap(),
            from: None,
            to: Some(Tag::new("1.0.0").unwrap()),
            digest: None,
            actor: Actor::Person("alice".into()),
            reason: Some("incident".into()),
            forced: false,
            hold,
            target: None,
            identity: None,
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// A person's commit moving the target from `before` to `after`.
    fn by_hand(day: u8, before: Option<&str>, after: &str) -> Event {
        Event {
            time: at(&format!("2026-11-{day:02}T00:00:00Z")),
            author: "bob".into(),
            record: None,
            moved: Some((before.map(str::to_string), Some(after.to_string()))),
        }
    }

    /// One of our commits carrying `record`.
    fn ours(day: u8, actor: Actor, hold: Option<HoldChange>) -> Event {
        Event {
            time: at(&format!("2026-11-{day:02}T00:00:00Z")),
            author: "tagpromoter".into(),
            record: Some(Record {
                actor,
                ..record(hold)
            }),
            moved: None,
        }
    }

    fn semver(range: &str) -> TagPolicy {
        TagPolicy {
            exclude: vec![],
            filter: None,
            order: Order::Semver {
                range: Constraint::parse(range).unwrap(),
                loose: false,
            },
        }
    }

    fn newest_build() -> TagPolicy {
        TagPolicy {
            exclude: vec![],
            filter: None,
            order: Order::NewestBuild,
        }
    }

    /// Builds made on the day their name says (`b05` on Nov 5th); others unknown.
    fn built(tag: &str) -> Option<Timestamp> {
        let day: u8 = tag.strip_prefix('b')?.parse().ok()?;
        Some(at(&format!("2026-11-{day:02}T00:00:00Z")))
    }

    #[test]
    fn who_holds_after_each_history() {
        let alice = || Actor::Person("alice".into());
        let set = || Some(HoldChange::Set { until: None });
        // (case, policy, events, held by whom)
        let cases: Vec<(&str, TagPolicy, Vec<Event>, Option<&str>)> = vec![
            (
                "hand rollback",
                semver("^1.0.0"),
                vec![by_hand(1, Some("1.2.0"), "1.1.0")],
                Some("bob"),
            ),
            (
                "hand bump forward",
                semver("^1.0.0"),
                vec![by_hand(1, Some("1.1.0"), "1.2.0")],
                None,
            ),
            (
                "hand bump past the range",
                semver("^1.0.0"),
                vec![by_hand(1, Some("1.1.0"), "7.0.0")],
                None,
            ),
            (
                "hand hotfix below, outside the range",
                semver("^1.0.0"),
                vec![by_hand(1, Some("1.1.0"), "1.0.1-hotfix.1")],
                Some("bob"),
            ),
            (
                "hand value the order cannot place",
                semver("^1.0.0"),
                vec![by_hand(1, Some("1.1.0"), "latest")],
                Some("bob"),
            ),
            (
                "value removed by hand",
                semver("^1.0.0"),
                vec![Event {
                    moved: Some((Some("1.1.0".into()), None)),
                    ..by_hand(1, None, "unused")
                }],
                Some("bob"),
            ),
            (
                "created by hand with such a value",
                semver("^1.0.0"),
                vec![by_hand(1, None, "latest")],
                Some("bob"),
            ),
            (
                "created by hand with a version",
                semver("^1.0.0"),
                vec![by_hand(1, None, "1.0.0")],
                None,
            ),
            (
                "rollback, then forward but still held",
                semver("^1.0.0"),
                vec![
                    by_hand(1, Some("1.2.0"), "1.0.0"),
                    by_hand(2, Some("1.0.0"), "1.0.1"),
                ],
                Some("bob"),
            ),
            (
                "rollback, released",
                semver("^1.0.0"),
                vec![
                    by_hand(1, Some("1.2.0"), "1.1.0"),
                    ours(2, alice(), Some(HoldChange::Released)),
                ],
                None,
            ),
            (
                "released, then rolled back again",
                semver("^1.0.0"),
                vec![
                    ours(1, alice(), Some(HoldChange::Released)),
                    by_hand(2, Some("1.2.0"), "1.1.0"),
                ],
                Some("bob"),
            ),
            (
                "promote's rollback",
                semver("^1.0.0"),
                vec![ours(1, alice(), set())],
                Some("alice"),
            ),
            (
                "promote forward keeps a hold",
                semver("^1.0.0"),
                vec![ours(1, alice(), set()), ours(2, alice(), None)],
                Some("alice"),
            ),
            (
                "the bot wrote after an expired hold",
                semver("^1.0.0"),
                vec![ours(1, alice(), set()), ours(2, Actor::Bot, None)],
                None,
            ),
            (
                "newestBuild: back to an older build",
                newest_build(),
                vec![by_hand(1, Some("b05"), "b03")],
                Some("bob"),
            ),
            (
                "newestBuild: on to a newer build",
                newest_build(),
                vec![by_hand(1, Some("b03"), "b05")],
                None,
            ),
            (
                "newestBuild: a build of unknown age",
                newest_build(),
                vec![by_hand(1, Some("b03"), "gone")],
                Some("bob"),
            ),
        ];
        for (case, policy, events, expected) in cases {
            let hold = hold_after(&events, &policy, &built);
            let holding = hold.as_ref().filter(|h| h.released.is_none());
            assert_eq!(holding.map(|h| h.by.as_str()), expected, "{case}: {hold:?}");
        }
    }

    #[test]
    fn a_released_hold_says_when_it_ended() {
        let alice = || Actor::Person("alice".into());
        let events = [
            by_hand(1, Some("1.2.0"), "1.1.0"),
            ours(2, alice(), Some(HoldChange::Released)),
        ];
        let hold = hold_after(&events, &semver("^1.0.0"), &|_| None).unwrap();
        let now = at("2026-11-03T00:00:00Z");
        assert!(!hold.active(now));
        assert_eq!(hold.ended(now), Some(at("2026-11-02T00:00:00Z")));
    }

    #[test]
    fn our_hold_carries_who_why_and_until() {
        let until = Some(at("2026-11-05T00:00:00Z"));
        let events = [ours(
            3,
            Actor::Person("alice".into()),
            Some(HoldChange::Set { until }),
        )];
        let hold = hold_after(&events, &semver(">=1.0.0"), &|_| None).unwrap();
        assert_eq!(
            (
                hold.by.as_str(),
                hold.reason.as_deref(),
                hold.until,
                hold.since
            ),
            ("alice", Some("incident"), until, at("2026-11-03T00:00:00Z"))
        );
        let by_hand = hold_after(
            &[by_hand(1, Some("1.1.0"), "latest")],
            &semver("^1.0.0"),
            &|_| None,
        )
        .unwrap();
        assert_eq!(
            by_hand.reason.as_deref(),
            Some(
                "set by hand to latest, which the policy cannot order (latest is not a version X.Y.Z)"
            )
        );
    }
}
