//! What an environment ran over time, as data: the values its target held, each from the
//! commit that wrote it until the next change. The gates read soak times from it; the
//! GitOps history builds it. Pure.

use jiff::Timestamp;

use crate::image::Tag;

/// A period during which an environment ran a tag: from the commit that put it there to the
/// commit that replaced it (`None`: it still runs it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Residency {
    /// When the tag arrived.
    pub since: Timestamp,
    /// When it was replaced, if it was.
    pub until: Option<Timestamp>,
}

/// The values a target held over time, oldest first: each from its time until the next.
/// Values are the raw text of the file (a person may have written anything there).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    /// (since, value) pairs, oldest first; consecutive values differ.
    pub changes: Vec<(Timestamp, Option<String>)>,
}

impl Timeline {
    /// The value now.
    pub fn current(&self) -> Option<&str> {
        self.changes.last().and_then(|(_, v)| v.as_deref())
    }

    /// When the target held `tag`.
    pub fn residencies(&self, tag: &Tag) -> Vec<Residency> {
        let mut out = Vec::new();
        for (i, (since, value)) in self.changes.iter().enumerate() {
            if value.as_deref() == Some(tag.as_str()) {
                out.push(Residency {
                    since: *since,
                    until: self.changes.get(i + 1).map(|(t, _)| *t),
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
                (ts("2026-11-01T00:00:00Z"), Some("1.0.0".into())),
                (ts("2026-11-02T00:00:00Z"), Some("1.1.0".into())),
                (ts("2026-11-03T00:00:00Z"), Some("1.0.0".into())),
            ],
        };
        assert_eq!(t.current(), Some("1.0.0"));
        let tag = |s: &str| Tag::new(s).unwrap();
        assert_eq!(
            t.residencies(&tag("1.0.0")),
            vec![
                Residency {
                    since: ts("2026-11-01T00:00:00Z"),
                    until: Some(ts("2026-11-02T00:00:00Z"))
                },
                Residency {
                    since: ts("2026-11-03T00:00:00Z"),
                    until: None
                },
            ]
        );
        assert!(t.residencies(&tag("2.0.0")).is_empty());
    }
}
