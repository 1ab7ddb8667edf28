//! Trusted clocks for soak: an upstream change counts from when the bot first saw it on
//! its branch with its tag in the registry ([`crate::gitops::sightings`], kept in the
//! downstream's repository), never from the date its commit carries — whoever wrote that
//! commit chose that date, and a soak must not be shortened by it. The bot's own record on
//! the downstream's own branch is exempt: its time is the bot's clock, and whoever can
//! forge it can edit the downstream directly.
//!
//! Pure: [`floor`] dates a timeline, [`seen_by_pass`] says what a pass saw first; the engine
//! reads and writes the ledgers.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use super::observe::{EnvKey, Observed};
use crate::gitops::sightings::{Rollout, Seen, Sighted, Sightings};
use crate::image::Tag;
use crate::policy::Timeline;
use crate::rules::{Destination, Environment, Promotion, Rules, WriteMode};

/// How the ledger names the upstream environment `up` of `p`: by where it writes — its
/// repository, branch and target — so that renaming a promotion or an environment changes
/// nothing (one word: a space in a path is written `%20`).
pub(crate) fn upstream_name(p: &Promotion, up: &Environment) -> String {
    format!(
        "{}@{}:{}",
        up.destination.repository,
        up.destination.branch,
        p.target_id(up)
    )
    .replace(' ', "%20")
}

/// Whether a change's own time may be used for `env`'s soak: the bot pushed it itself, on
/// `env`'s own branch. (Where `up` writes by pull request the bot never pushes its branch:
/// its commit lands when a person merges or pushes it, which the forge dates, or the
/// sighting.)
fn own_clock(ours: bool, up: &Environment, env: &Environment) -> bool {
    ours && up.destination == env.destination && up.write != WriteMode::PullRequest
}

/// When the bot first saw `timeline`'s change `index` (`from_start`: the history was read
/// from its first commit; else the first change is the value held where reading began,
/// its commit not the one that set it, and the newest sighting of that value dates it).
fn first_seen(
    ledger: Option<&Sightings>,
    name: &str,
    timeline: &Timeline,
    index: usize,
    from_start: bool,
) -> Option<Timestamp> {
    let ledger = ledger?;
    let change = timeline.changes.get(index)?;
    let own = change.commit.as_deref().and_then(|id| ledger.get(name, id));
    if own.is_some() || from_start || index > 0 {
        return own;
    }
    let read: BTreeSet<&str> = timeline
        .changes
        .iter()
        .filter_map(|c| c.commit.as_deref())
        .collect();
    ledger.last_of_value(name, change.value.as_deref()?, &read)
}

/// Mark when the bot first saw each change of `timeline` (the upstream `up` of `env`;
/// `from_start` as read): its sighting in `ledger`, `now` for one never sighted (it is
/// being seen now), its own time for the bot's own push to `env`'s branch, and the
/// forge's merge time where a pull request's merge dated it. Returns the change whose
/// run a commit forced off the branch interrupted, if one did: it runs again from `now`.
pub fn floor(
    timeline: &mut Timeline,
    ledger: Option<&Sightings>,
    (p, up, env): (&Promotion, &Environment, &Environment),
    from_start: bool,
    now: Timestamp,
) -> Option<usize> {
    let name = upstream_name(p, up);
    let seen: Vec<Option<Timestamp>> = (0..timeline.changes.len())
        .map(|i| first_seen(ledger, &name, timeline, i, from_start))
        .collect();
    for (c, seen) in timeline.changes.iter_mut().zip(seen) {
        let id = c.commit.as_deref();
        // Interrupted, or (verified) healthy only since, or seen not running healthy then.
        let resumed = id.and_then(|id| ledger?.resumed(&name, id));
        let rollout = id.and_then(|id| ledger?.rollout(&name, id)).map(|r| r.at);
        c.resumed = resumed.max(rollout);
        c.seen = Some(match (own_clock(c.ours, up, env), c.seen) {
            (true, _) => c.since,
            // Dated by the forge's merge already.
            (false, Some(merged)) => merged,
            (false, None) => seen.unwrap_or(now),
        });
    }
    let then = interrupted(ledger?, &name, timeline, from_start)?;
    timeline.changes[then].resumed = Some(now);
    Some(then)
}

/// The change of `timeline` whose run a commit no longer on the branch interrupted: the
/// bot last saw that commit running, after this change had begun (the branch was forced
/// back past it). A history read from part-way starts with the value held where reading
/// began: the commit may lie before that, and is gone only if the read says so.
fn interrupted(
    ledger: &Sightings,
    name: &str,
    timeline: &Timeline,
    from_start: bool,
) -> Option<usize> {
    let (since, other, value) = ledger.running(name)?;
    let changes = &timeline.changes;
    // When the bot saw it (not its commit's date, which may lie ahead).
    let seen = |c: &crate::policy::Change| c.seen.unwrap_or(c.since);
    let read = changes.iter().any(|c| c.commit.as_deref() == Some(other));
    // Before where reading began, the commit would hold the value read there, and every
    // change read after it would have been seen after it was seen running (it was the last
    // then); a change seen before says the commit came after it, and went.
    let before_read = !from_start
        && changes
            .first()
            .is_some_and(|c| c.value.as_deref() == Some(value))
        && changes[1..].iter().all(|c| seen(c) > since);
    if read || before_read {
        return None;
    }
    changes.iter().rposition(|c| seen(c) <= since)
}

/// What a pass saw of the upstreams of one downstream destination: the changes it saw
/// first, and the changes it read (of each upstream environment, by commit).
#[derive(Debug, Default)]
pub struct Seeing {
    /// First seen now: not in the ledger, their tag listed (a tag not pushed yet is not
    /// running anywhere), or a bump the pass itself landed upstream.
    pub new: Vec<(Sighted, Seen)>,
    /// The commits of each upstream environment's changes read this pass.
    pub read: BTreeMap<String, BTreeSet<String>>,
    /// What each upstream environment was seen running (the commit of its last change, and
    /// its value), and when.
    pub running: Vec<(String, String, String, Timestamp)>,
    /// Changes seen running again now, a commit forced off the branch having interrupted
    /// them.
    pub resumed: Vec<(Sighted, Seen)>,
    /// Verified upstreams: how the rollout of each one's current change is seen now.
    pub rollouts: Vec<(Sighted, Rollout)>,
}

impl Seeing {
    /// `ledger` with what was seen: the new sightings added, and the sightings of changes
    /// no longer read forgotten as [`Sightings::updated`] says.
    pub fn applied_to(&self, ledger: &Sightings) -> Sightings {
        let updated = ledger
            .updated(self.new.iter().cloned(), &self.read)
            .with_resumed(self.resumed.iter().cloned())
            .with_rollouts(self.rollouts.iter().cloned());
        self.running
            .iter()
            .fold(updated, |ledger, (environment, commit, value, now)| {
                ledger.seen_running(environment, commit, value, *now)
            })
    }
}

/// What a pass at `now` saw, per downstream destination, of the changes upstream (with
/// the bumps the pass itself landed there, `landed`: environment, commit, tag).
pub fn seen_by_pass(
    rules: &Rules,
    observed: &Observed,
    landed: &[(EnvKey, String, Tag)],
    now: Timestamp,
) -> BTreeMap<Destination, Seeing> {
    let mut seeing: BTreeMap<Destination, Seeing> = BTreeMap::new();
    for p in &rules.promotions {
        let listed = match observed.images.get(&p.image) {
            Some(Ok(list)) => Some(list),
            _ => None,
        };
        for env in &p.environments {
            let Some(up) = p.upstream_of(env) else {
                continue;
            };
            let name = upstream_name(p, up);
            let up_key = EnvKey::of(p, up);
            let here = seeing.entry(env.destination.clone()).or_default();
            for (_, commit, tag) in landed.iter().filter(|(key, ..)| *key == up_key) {
                here.new
                    .push(((name.clone(), commit.clone()), (now, tag.to_string())));
            }
            let Some(state) = observed.environments.get(&up_key) else {
                continue;
            };
            let ledger = observed.sightings.get(&env.destination).map(|(l, _)| l);
            let commits = here.read.entry(name.clone()).or_default();
            let timeline = &state.timeline;
            // A change a forced branch interrupted is seen running again from now.
            let mut dated = timeline.clone();
            if let Some(then) = floor(&mut dated, ledger, (p, up, env), state.from_start, now)
                && let (Some(commit), Some(value)) =
                    (&dated.changes[then].commit, &dated.changes[then].value)
            {
                here.resumed
                    .push(((name.clone(), commit.clone()), (now, value.clone())));
            }
            // Verified, what it runs is dated by its rollout, and kept beside the sightings:
            // a value replaced later still counts only from its last healthy start.
            // (Of the change it was judged against: the pass's own bump came after.)
            if let Some((at, healthy)) = rollout_seen(observed.deployments.get(&up_key), now)
                && let Some(commit) = observed.judged.get(&up_key)
                && let Some(judged) = timeline
                    .changes
                    .iter()
                    .rfind(|c| c.commit.as_ref() == Some(commit))
                && let Some(value) = &judged.value
                && Tag::new(value).is_ok()
            {
                let rollout = Rollout {
                    at,
                    value: value.clone(),
                    healthy,
                };
                here.rollouts
                    .push(((name.clone(), commit.clone()), rollout));
            }
            // Moved on from what its controller runs: how that change runs, too.
            if let Some(run) = observed.running.get(&up_key)
                && let Some(commit) = &run.commit
                && observed.judged.get(&up_key) != Some(commit)
                && let Some(change) = timeline
                    .changes
                    .iter()
                    .rfind(|c| c.commit.as_ref() == Some(commit))
                && let Some(value) = &change.value
                && Tag::new(value).is_ok()
            {
                let rollout = Rollout {
                    at: run.healthy_since.unwrap_or(now),
                    value: value.clone(),
                    healthy: run.healthy_since.is_some(),
                };
                here.rollouts
                    .push(((name.clone(), commit.clone()), rollout));
            }
            // What it runs — unless all that was read of it is where reading began (that
            // commit need not be the one that set its value).
            if let Some(last) = timeline.changes.last()
                && (state.from_start || timeline.changes.len() > 1)
                && let (Some(commit), Some(value)) = (&last.commit, &last.value)
                // (A value the ledger's line cannot hold as one word — no tag — is not
                // recorded: nothing then says the branch was forced back past it.)
                && Tag::new(value).is_ok()
            {
                here.running
                    .push((name.clone(), commit.clone(), value.clone(), now));
            }
            for (i, c) in timeline.changes.iter().enumerate() {
                let Some(commit) = &c.commit else { continue };
                commits.insert(commit.clone());
                let known = first_seen(ledger, &name, timeline, i, state.from_start).is_some();
                let Some(tag) = c.value.as_deref().and_then(|v| Tag::new(v).ok()) else {
                    continue;
                };
                let pushed = listed.is_some_and(|l| l.tags.contains(&tag));
                if !known && pushed && !own_clock(c.ours, up, env) {
                    here.new
                        .push(((name.clone(), commit.clone()), (now, tag.to_string())));
                }
            }
        }
    }
    seeing
}

/// How a verified upstream's current value runs, by what its controller says now:
/// healthy since it turned so, or not running healthy now (not rolled out, unhealthy,
/// another image). A controller that cannot be read says nothing.
fn rollout_seen(
    deployment: Option<&super::verify::Deployment>,
    now: Timestamp,
) -> Option<(Timestamp, bool)> {
    use super::verify::Deployment;
    match deployment? {
        Deployment::Deployed { since } => Some((*since, true)),
        Deployment::Deploying { .. }
        | Deployment::Unhealthy { .. }
        | Deployment::Mismatch { .. } => Some((now, false)),
        Deployment::Unknown { .. } => None,
    }
}
