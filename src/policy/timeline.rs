//! What an environment ran over time, as data: the values its target held, each from the
//! commit that wrote it until the next change, with the digest that ran where it is known.
//! The gates read soak times from it; the GitOps history builds it. Pure.

use jiff::Timestamp;

use crate::image::{Digest, Tag};

/// A period during which an environment ran a tag: from the commit that put it there to the
/// commit that replaced it (`None`: it still runs it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Residency {
    /// When the tag arrived.
    pub since: Timestamp,
    /// When it was replaced, if it was.
    pub until: Option<Timestamp>,
    /// The digest that ran, where known (pinned in the file, or recorded in our trailer).
    pub digest: Option<Digest>,
    /// Whether what ended it was a rollback (a change that set a hold).
    pub rolled_back: bool,
}

/// One value a target took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// When it landed (the commit's time, or its pull request's merge).
    pub since: Timestamp,
    /// The raw text of the tag (a person may have written anything there).
    pub value: Option<String>,
    /// The digest that ran with it, where known.
    pub digest: Option<Digest>,
    /// Whether this change was a rollback (it set a hold): the value it replaced does not
    /// flow downstream until the environment runs it again.
    pub rollback: bool,
    /// The commit that made it (hex), where read from Git: a pull request merged by
    /// fast-forward landed it later than its own time says.
    pub commit: Option<String>,
    /// Whether the commit is tagpromoter's own record for this environment, on its branch:
    /// its time is the bot's clock, not one a person chose.
    pub ours: bool,
    /// When the bot first saw it, where that is known: it ran from no earlier than this
    /// and no earlier than `since`, and what ran before it ran until the earlier of the
    /// two (a commit's date is whatever its writer chose).
    pub seen: Option<Timestamp>,
    /// When it was seen running again, a change forced off the branch having interrupted
    /// its run: it runs (for soak) from no earlier than this. What ran before it is not
    /// affected.
    pub resumed: Option<Timestamp>,
}

impl Change {
    /// When it started running, as far as can be trusted: the latest of its time, when it
    /// was first seen, and when it was seen running again after an interruption.
    pub fn started(&self) -> Timestamp {
        self.since
            .max(self.seen.unwrap_or(self.since))
            .max(self.resumed.unwrap_or(self.since))
    }

    /// When what ran before it stopped, as far as can be trusted: the earlier of its time
    /// and when it was first seen.
    pub fn replaced(&self) -> Timestamp {
        self.since.min(self.seen.unwrap_or(self.since))
    }

    /// A change to `value` at `since`, digest unknown, not a rollback.
    pub fn to(since: Timestamp, value: &str) -> Self {
        Self {
            since,
            value: Some(value.to_string()),
            digest: None,
            rollback: false,
            commit: None,
            ours: false,
            seen: None,
            resumed: None,
        }
    }
}

/// The values a target held over time, oldest first: each from its time until the next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    /// The changes, oldest first; consecutive ones differ in value or digest.
    pub changes: Vec<Change>,
}

impl Timeline {
    /// The value now.
    pub fn current(&self) -> Option<&str> {
        self.changes.last().and_then(|c| c.value.as_deref())
    }

    /// The current residency, if the target holds a value.
    pub fn running(&self) -> Option<Residency> {
        let last = self.changes.last()?;
        last.value.as_ref()?;
        Some(Residency {
            since: last.started(),
            until: None,
            digest: last.digest.clone(),
            rolled_back: false,
        })
    }

    /// When the target held `tag`. A digest change under the same tag starts a residency
    /// of its own (the bits changed).
    pub fn residencies(&self, tag: &Tag) -> Vec<Residency> {
        let mut out = Vec::new();
        for (i, c) in self.changes.iter().enumerate() {
            if c.value.as_deref() == Some(tag.as_str()) {
                let next = self.changes.get(i + 1);
                out.push(Residency {
                    since: c.started(),
                    until: next.map(Change::replaced),
                    digest: c.digest.clone(),
                    rolled_back: next.is_some_and(|n| n.rollback),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn residencies_run_from_one_change_to_the_next() {
        let t = Timeline {
            changes: vec![
                Change::to(ts("2026-11-01T00:00:00Z"), "1.0.0"),
                Change::to(ts("2026-11-02T00:00:00Z"), "1.1.0"),
                Change::to(ts("2026-11-03T00:00:00Z"), "1.0.0"),
            ],
        };
        assert_eq!(t.current(), Some("1.0.0"));
        let tag = |s: &str| Tag::new(s).unwrap();
        assert_eq!(
            t.residencies(&tag("1.0.0")),
            vec![
                Residency {
                    since: ts("2026-11-01T00:00:00Z"),
                    until: Some(ts("2026-11-02T00:00:00Z")),
                    digest: None,
                    rolled_back: false,
                },
                Residency {
                    since: ts("2026-11-03T00:00:00Z"),
                    until: None,
                    digest: None,
                    rolled_back: false,
                },
            ]
        );
        assert!(t.residencies(&tag("2.0.0")).is_empty());
    }
}
