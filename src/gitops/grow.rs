//! Growing a snapshot by the commits its branch gained since it was read: a worker's pass
//! after a bump, or the `once` after one, walks the few new commits, not the whole history
//! again. It still reads every target file at the new tip (the oldest new commit is read as
//! a history's first is); diffing against the old tip's trees instead, to read only the
//! files the new commits changed, is the next step.
//!
//! Only where the result is what a whole read would say: the old tip must be on the new
//! tip's first-parent line, at most [`MAX_GROWTH`] commits back, and the new commits plain
//! (no merges, whose side branches a read walks into; no records without a
//! `Tagpromoter-Target`, whose meaning depends on names learnt over the whole history).
//! Otherwise the caller reads whole. It reads; it decides nothing.

use gix::ObjectId;

use super::error::GitError;
use super::history::History;
use super::snapshot::{Snapshot, TargetHistory, TargetQuery, read};
use super::store::Store;

/// The most commits a snapshot is grown by; a branch that moved further is read whole.
const MAX_GROWTH: usize = 1_000;

/// `base` (read at an ancestor of `tip` for `queries`) grown to `tip`, or `None` when only
/// a whole read can say.
pub(super) fn grow(
    store: &Store,
    base: &Snapshot,
    tip: ObjectId,
    queries: &[TargetQuery],
) -> Result<Option<Snapshot>, GitError> {
    if base.targets.len() != queries.len() {
        return Ok(None);
    }
    let line = History::walk_at_most(store, tip, MAX_GROWTH + 1)?;
    let Some(gained) = line.commits().iter().position(|c| c.id == base.tip) else {
        return Ok(None);
    };
    let new = &line.commits()[..gained];
    let plain = new
        .iter()
        .all(|c| c.info.parents.len() == 1 && c.record.as_ref().is_none_or(|r| r.target.is_some()));
    let Some(oldest) = new.last().filter(|_| plain).map(|c| c.id) else {
        return Ok(None);
    };
    let segment = read(store, tip, queries, gained)?;
    let targets = base
        .targets
        .iter()
        .zip(segment.targets)
        .map(|(before, after)| {
            // The segment's oldest commit is listed with what the target held then; it
            // changed something only if that differs from what it held at the old tip.
            let held = before.entries.iter().rev().find_map(|e| e.value.clone());
            let mut entries = before.entries.clone();
            entries.extend(after.entries.into_iter().filter_map(|mut e| {
                if e.id == oldest && e.value == held {
                    e.value = None;
                }
                (e.value.is_some() || e.record.is_some()).then_some(e)
            }));
            TargetHistory {
                current: after.current,
                entries,
                from_start: before.from_start,
            }
        })
        .collect();
    Ok(Some(Snapshot {
        tip,
        files: segment.files,
        targets,
        reach: base.reach,
        walked: base.walked + gained,
    }))
}
