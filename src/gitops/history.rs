//! History queries for the gates: when did an environment run which tag (a [`Timeline`] of
//! its target's value along the branch's first-parent history, so that commits made by
//! people count as much as ours), and which hold our trailers set or released.

use std::collections::HashMap;
use std::path::Path;

use gix::ObjectId;
use jiff::Timestamp;

use super::error::GitError;
use super::message::{HoldChange, Record};
use super::store::{CommitInfo, Store};
use crate::policy::{Hold, Residency};

/// The most commits a history query walks.
pub const MAX_COMMITS: usize = 20_000;

/// The first-parent history of a branch, newest first.
#[derive(Debug, Clone, Default)]
pub struct History {
    commits: Vec<(ObjectId, CommitInfo)>,
    /// Whether the walk stopped at a shallow boundary (older history exists elsewhere).
    pub truncated: bool,
}

impl History {
    /// Walk first parents from `tip`.
    pub fn walk(store: &Store, tip: ObjectId) -> Result<Self, GitError> {
        let mut commits = Vec::new();
        let mut next = Some(tip);
        let boundary = store.shallow_boundary();
        let mut truncated = false;
        while let Some(id) = next {
            if commits.len() >= MAX_COMMITS {
                truncated = true;
                break;
            }
            let info = store.info(id)?;
            next = info.parents.first().copied().filter(|p| store.has(*p));
            if boundary.contains(&id) || (next.is_none() && !info.parents.is_empty()) {
                truncated = true;
            }
            commits.push((id, info));
        }
        Ok(Self { commits, truncated })
    }

    /// The commits, newest first.
    pub fn commits(&self) -> &[(ObjectId, CommitInfo)] {
        &self.commits
    }

    /// The value of a target along the history: `value` reads the tag from the file's text
    /// (`None` when absent or unreadable). Only commits that change the file are read.
    pub fn timeline(
        &self,
        store: &Store,
        file: &Path,
        value: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Timeline, GitError> {
        let mut by_blob: HashMap<ObjectId, Option<String>> = HashMap::new();
        let mut changes: Vec<(Timestamp, Option<String>)> = Vec::new();
        // Oldest first: each commit whose value differs from the one before starts a run.
        for (id, info) in self.commits.iter().rev() {
            let tag = match store.read(*id, file) {
                Ok(Some(f)) => by_blob
                    .entry(f.blob)
                    .or_insert_with(|| String::from_utf8(f.content).ok().and_then(|t| value(&t)))
                    .clone(),
                Ok(None) | Err(_) => None,
            };
            if changes.last().is_none_or(|(_, last)| *last != tag) {
                changes.push((info.time, tag));
            }
        }
        Ok(Timeline { changes })
    }

    /// The hold on `promotion`/`environment` set by the newest hold trailer, if it is `set`.
    pub fn hold(&self, promotion: &str, environment: &str) -> Option<Hold> {
        self.commits.iter().find_map(|(_, info)| {
            let r = Record::parse(&info.message)?;
            if r.promotion != promotion || r.environment != environment {
                return None;
            }
            match r.hold? {
                HoldChange::Set { until } => Some(Some(Hold { until })),
                HoldChange::Released => Some(None),
            }
        })?
    }

    /// Our commits for `promotion`/`environment`, newest first.
    pub fn records(&self, promotion: &str, environment: &str) -> Vec<(Timestamp, Record)> {
        self.commits
            .iter()
            .filter_map(|(_, info)| {
                let r = Record::parse(&info.message)?;
                (r.promotion == promotion && r.environment == environment).then_some((info.time, r))
            })
            .collect()
    }
}

/// The values a target held over time, oldest first: each from its time until the next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    /// (since, value) pairs.
    pub changes: Vec<(Timestamp, Option<String>)>,
}

impl Timeline {
    /// The value now.
    pub fn current(&self) -> Option<&str> {
        self.changes.last().and_then(|(_, v)| v.as_deref())
    }

    /// When the target held `tag`.
    pub fn residencies(&self, tag: &str) -> Vec<Residency> {
        let mut out = Vec::new();
        for (i, (since, value)) in self.changes.iter().enumerate() {
            if value.as_deref() == Some(tag) {
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
        assert_eq!(
            t.residencies("1.0.0"),
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
        assert!(t.residencies("2.0.0").is_empty());
    }
}
