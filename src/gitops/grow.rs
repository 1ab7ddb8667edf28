//! Growing a snapshot by the commits its branch gained since it was read: a worker's pass
//! after a bump, or the `once` after one, walks the few new commits and reads only the
//! files they changed (their trees are compared with the old tip's); every other file's
//! text and value are the kept snapshot's.
//!
//! Only where the result is what a whole read would say: the old tip must be on the new
//! tip's first-parent line, at most [`MAX_GROWTH`] commits back, and the new commits plain
//! (no merges, whose side branches a read walks into; no records without a
//! `Tagpromoter-Target`, whose meaning depends on names learnt over the whole history).
//! Otherwise the caller reads whole. It reads; it decides nothing.

use std::collections::HashMap;
use std::path::PathBuf;

use gix::ObjectId;

use super::error::GitError;
use super::history::{FileChange, History};
use super::snapshot::{
    Entry, Snapshot, TargetQuery, Value, current, paths, text_at, value_in, whose,
};
use super::store::Store;

/// The most commits a snapshot is grown by; a branch that moved further is read whole.
const MAX_GROWTH: usize = 1_000;

/// `base` (read at an ancestor of `tip` for `queries`) grown to `tip`, or `None` when only
/// a whole read can say. It is grown in place: what no new commit changed is moved, not
/// copied.
pub(super) fn grow(
    store: &Store,
    mut base: Snapshot,
    tip: ObjectId,
    queries: &[TargetQuery],
) -> Result<Option<Snapshot>, GitError> {
    if base.targets.len() != queries.len() {
        return Ok(None);
    }
    let Some(gained) = History::since(store, tip, base.tip, MAX_GROWTH)? else {
        return Ok(None);
    };
    let new = gained.commits();
    let plain = new
        .iter()
        .all(|c| c.info.parents.len() == 1 && c.record.as_ref().is_none_or(|r| r.target.is_some()));
    if !plain {
        return Ok(None);
    }
    let paths = paths(queries);
    let changes = gained.file_changes_since(store, &paths, base.tip)?;
    let changed = |file: &PathBuf| changes.get(file).is_some_and(|c| !c.is_empty());
    let batch = store.batch();
    for path in paths.iter() {
        if changed(path) || !base.files.contains_key(path) {
            base.files.insert(path.clone(), text_at(&batch, tip, path));
        }
    }
    let mut texts = HashMap::new();
    for (target, q) in base.targets.iter_mut().zip(queries) {
        if changed(&q.file) || q.others.iter().any(|(f, _)| changed(f)) {
            target.current = current(&base.files, q);
        }
        // The value after each new commit that changed it from what it held before.
        let mut held = target.entries.iter().rev().find_map(|e| e.value.clone());
        let mut values: HashMap<usize, Value> = HashMap::new();
        for &FileChange { commit, blob } in changes.get(&q.file).into_iter().flatten() {
            let value = value_in(&batch, &mut texts, blob, &q.target);
            if held.as_ref() != Some(&value) {
                held = Some(value.clone());
                values.insert(commit, value);
            }
        }
        for (i, c) in new.iter().enumerate().rev() {
            let record = c
                .record
                .as_ref()
                .filter(|r| r.target.as_ref() == Some(&q.id) && whose(r, q));
            let value = values.remove(&i);
            if record.is_some() || value.is_some() {
                target.entries.push(Entry::of(c, record.cloned(), value));
            }
        }
    }
    base.tip = tip;
    base.walked += new.len();
    Ok(Some(base))
}
