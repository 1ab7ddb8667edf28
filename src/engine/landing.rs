//! When a pull request's change landed. A pull request merged by fast-forward puts the
//! bot's commit on the branch as it is, with the time it was committed — hours or days
//! before a person merged it; the environment ran the tag only from the merge. So for each
//! environment that writes by pull request and feeds another (`from`), the forge says when
//! the changes that count for the downstream soak were merged, and they start then.
//!
//! It must not decide: it only dates changes, asking the forge once per commit (a merge
//! time never changes) and a few commits at a time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use jiff::Timestamp;
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinSet;

use super::observe::{EnvKey, Observed};
use crate::forge::{Forge, ForgeError};
use crate::rules::{Destination, Rules, WriteMode};

/// Forge lookups in flight at once.
const CONCURRENT_LOOKUPS: usize = 8;

/// Merge times learned so far, by commit (kept for the engine's life: they never change).
#[derive(Debug, Default)]
pub struct MergeTimes {
    known: Mutex<HashMap<String, Timestamp>>,
}

/// The commits, per upstream environment writing to `destination`, whose landing counts
/// for a downstream soak: its changes from the one in force at the downstream's horizon
/// on. Only environments that write by pull request are asked about.
fn commits_to_date(
    rules: &Rules,
    destination: &Destination,
    observed: &Observed,
    now: Timestamp,
) -> BTreeMap<EnvKey, BTreeSet<String>> {
    let mut wanted: BTreeMap<EnvKey, BTreeSet<String>> = BTreeMap::new();
    for p in &rules.promotions {
        for env in &p.environments {
            let Some(up) = p.upstream_of(env) else {
                continue;
            };
            if up.write != WriteMode::PullRequest || up.destination != *destination {
                continue;
            }
            let key = EnvKey::of(p, up);
            let (Some(upstream), Some(own)) = (
                observed.environments.get(&key),
                observed.environments.get(&EnvKey::of(p, env)),
            ) else {
                continue;
            };
            let changes = &upstream.timeline.changes;
            let in_force = own
                .horizon(env.soak, now)
                .and_then(|h| changes.iter().rposition(|c| c.since <= h))
                .unwrap_or(0);
            wanted.entry(key).or_default().extend(
                changes[in_force..]
                    .iter()
                    .filter(|c| c.value.is_some())
                    .filter_map(|c| c.commit.clone()),
            );
        }
    }
    wanted
}

/// Date the changes of environments that write to `destination` by pull request by when
/// their pull request merged (on its branch), where that is later than the commit's own
/// time. An environment
/// whose dates the forge cannot give is marked (`landing_unknown`): what soaked there is
/// not known, and the environments it feeds fail until the forge answers.
pub async fn date_merges(
    forge: &Arc<dyn Forge>,
    times: &MergeTimes,
    rules: &Rules,
    destination: &Destination,
    observed: &mut Observed,
    now: Timestamp,
) {
    let base = destination.branch.as_str();
    let wanted = commits_to_date(rules, destination, observed, now);
    let unknown: BTreeSet<String> = {
        let known = times.known.lock().await;
        wanted
            .values()
            .flatten()
            .filter(|c| !known.contains_key(*c))
            .cloned()
            .collect()
    };
    let slots = Arc::new(Semaphore::new(CONCURRENT_LOOKUPS));
    let mut lookups = JoinSet::new();
    for commit in unknown {
        let (forge, slots, base) = (Arc::clone(forge), Arc::clone(&slots), base.to_string());
        lookups.spawn(async move {
            let _slot = slots.acquire_owned().await;
            let merged = forge.merged_at(&commit, &base).await;
            (commit, merged)
        });
    }
    let mut failed: HashMap<String, ForgeError> = HashMap::new();
    while let Some(joined) = lookups.join_next().await {
        match joined {
            Ok((commit, Ok(Some(at)))) => {
                times.known.lock().await.insert(commit, at);
            }
            Ok((_, Ok(None))) => {}
            Ok((commit, Err(e))) => {
                tracing::warn!(commit = %commit, error = %e, "cannot tell when a pull request merged");
                failed.insert(commit, e);
            }
            Err(_) => {}
        }
    }
    let known = times.known.lock().await;
    for (key, commits) in wanted {
        let Some(state) = observed.environments.get_mut(&key) else {
            continue;
        };
        state.landing_unknown = commits.iter().find_map(|c| failed.get(c)).cloned();
        let changes = &mut state.timeline.changes;
        for c in changes.iter_mut() {
            if let Some(merged) = c.commit.as_ref().and_then(|id| known.get(id)) {
                c.since = c.since.max(*merged);
                // The forge's clock: when it landed, whoever wrote the commit.
                c.seen = Some(*merged);
            }
        }
        // A change landed no earlier than the one before it.
        for i in 1..changes.len() {
            changes[i].since = changes[i].since.max(changes[i - 1].since);
        }
    }
}
