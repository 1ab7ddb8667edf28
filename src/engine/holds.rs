//! Holds, read from history: a rollback by `promote` (our trailer `Tagpromoter-Hold: set`)
//! or by a person's own commit that moves a target to a version the policy ranks lower, and
//! lifted by `release` (`Tagpromoter-Hold: released`) or by its expiry. Pure: the history
//! comes in as data.

use std::cmp::Ordering;

use jiff::Timestamp;

use crate::gitops::message::{Actor, HoldChange, Record};
use crate::policy::{Hold, TagPolicy};

/// One commit of an environment's history, as far as holds care.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    /// The commit time.
    pub time: Timestamp,
    /// The commit's author.
    pub author: &'a str,
    /// Our record for this promotion and environment, if the commit is one.
    pub record: Option<&'a Record>,
    /// When the commit changed the target's tag: (before, after).
    pub moved: Option<(Option<&'a str>, Option<&'a str>)>,
}

/// The hold in force after `events` (oldest first), if any; expired holds are returned too
/// (the gates know that an expired hold does not hold).
pub fn hold_after(events: &[Event<'_>], policy: &TagPolicy) -> Option<Hold> {
    let mut hold = None;
    for e in events {
        if let Some(record) = e.record {
            match &record.hold {
                Some(HoldChange::Set { until }) => {
                    hold = Some(Hold {
                        since: e.time,
                        until: *until,
                        by: match &record.actor {
                            Actor::Person(who) => who.clone(),
                            Actor::Bot => "tagpromoter".into(),
                        },
                        reason: record.reason.clone(),
                    });
                }
                Some(HoldChange::Released) => hold = None,
                None => {}
            }
            continue;
        }
        // A person's hand-made change: moving to a lower version is a rollback, and holds.
        if let Some((Some(before), Some(after))) = e.moved
            && policy.compare(after, before, &|_| None) == Some(Ordering::Less)
        {
            hold = Some(Hold {
                since: e.time,
                until: None,
                by: e.author.to_string(),
                reason: Some(format!("rolled back by hand from {before} to {after}")),
            });
        }
    }
    hold
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{Repository, Tag};
    use crate::policy::{Constraint, Order};

    fn policy() -> TagPolicy {
        TagPolicy {
            exclude: vec![],
            filter: None,
            order: Order::Semver(Constraint::parse(">=1.0.0").unwrap()),
        }
    }

    fn record(hold: Option<HoldChange>) -> Record {
        Record {
            promotion: "app".into(),
            environment: "prod".into(),
            image: Repository::new("acme/app").unwrap(),
            from: None,
            to: Tag::new("1.0.0").unwrap(),
            digest: None,
            actor: Actor::Person("alice".into()),
            reason: Some("incident".into()),
            forced: false,
            hold,
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_hand_made_rollback_holds_until_released() {
        let released = record(Some(HoldChange::Released));
        let by_hand = Event {
            time: at("2026-11-01T00:00:00Z"),
            author: "bob",
            record: None,
            moved: Some((Some("1.2.0"), Some("1.1.0"))),
        };
        let hold = hold_after(std::slice::from_ref(&by_hand), &policy()).unwrap();
        assert_eq!(hold.by, "bob");
        assert_eq!(hold.since, at("2026-11-01T00:00:00Z"));
        assert_eq!(hold.until, None);
        let release = Event {
            time: at("2026-11-02T00:00:00Z"),
            author: "tagpromoter",
            record: Some(&released),
            moved: None,
        };
        assert_eq!(hold_after(&[by_hand, release], &policy()), None);
    }

    #[test]
    fn a_hand_made_bump_forward_is_no_hold_and_our_hold_carries_who_and_why() {
        let forward = Event {
            time: at("2026-11-01T00:00:00Z"),
            author: "bob",
            record: None,
            moved: Some((Some("1.1.0"), Some("1.2.0"))),
        };
        assert_eq!(hold_after(&[forward], &policy()), None);
        let set = record(Some(HoldChange::Set {
            until: Some(at("2026-11-05T00:00:00Z")),
        }));
        let ours = Event {
            time: at("2026-11-03T00:00:00Z"),
            author: "tagpromoter",
            record: Some(&set),
            moved: Some((Some("1.2.0"), Some("1.0.0"))),
        };
        let hold = hold_after(&[ours], &policy()).unwrap();
        assert_eq!(
            (hold.by.as_str(), hold.reason.as_deref()),
            ("alice", Some("incident"))
        );
        assert_eq!(hold.until, Some(at("2026-11-05T00:00:00Z")));
    }
}
