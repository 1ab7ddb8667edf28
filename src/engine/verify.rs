//! Deploy verification in a pass: for each environment with `verify:`, what its controller
//! reports, held against the commit that set the environment's value (the controller must
//! run that commit, or a later one, synced and healthy). What this means for soak is
//! [`Deployment::apply`]'s: a value runs from its rollout, not from its commit.
//!
//! It reads clusters and the mirror's ancestry; it writes nothing. What passes saw of
//! rollouts is kept in the sightings ledger ([`super::sightings`]), so that a value
//! replaced since still counts only what it ran healthy.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use gix::ObjectId;
use jiff::Timestamp;

use super::observe::{EnvKey, Observed};
use crate::deploy::RolloutState;
use crate::deploy::cluster::{Clusters, Place};
use crate::gitops::Repo;
use crate::policy::Timeline;
use crate::rules::{Destination, Environment, Promotion, Rules};

/// How an environment's rollout stands, for its report and alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutReport {
    /// Whether its value runs.
    pub deployment: Deployment,
    /// When its value's commit landed (a rollout is awaited from then).
    pub landed: Option<Timestamp>,
    /// How long a rollout may take before the environment is reported stalled.
    pub deploy_timeout: jiff::SignedDuration,
    /// What deploys it, in words (`Argo CD Application argocd/app-dev`).
    pub controller: String,
}

impl RolloutReport {
    /// Since when a rollout has been awaited past `deployTimeout`, if it has: the value is
    /// not deployed (or its controller cannot be read) that long after its commit landed.
    pub fn overdue(&self, now: Timestamp) -> Option<Timestamp> {
        if !matches!(
            self.deployment,
            Deployment::Deploying { .. } | Deployment::Unknown { .. }
        ) {
            return None;
        }
        let landed = self.landed?;
        let due = landed.checked_add(self.deploy_timeout).ok()?;
        (due <= now).then_some(landed)
    }
}

/// `controller` in words, for states and alerts.
pub fn controller_name(controller: &crate::rules::Controller) -> String {
    match controller {
        crate::rules::Controller::Argocd {
            application,
            namespace,
        } => format!("Argo CD Application {namespace}/{application}"),
        crate::rules::Controller::Flux {
            kustomization,
            namespace,
            helm_release,
        } => match helm_release {
            Some(release) => format!(
                "Flux Kustomization {namespace}/{kustomization} and HelmRelease {namespace}/{release}"
            ),
            None => format!("Flux Kustomization {namespace}/{kustomization}"),
        },
    }
}

/// Whether an environment's current value runs, as its controller reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deployment {
    /// It runs, synced and healthy, since `since` (never before its commit landed).
    Deployed {
        /// Since when.
        since: Timestamp,
    },
    /// Not yet: the controller runs an older commit, or is still applying this one.
    Deploying {
        /// The controller's own words.
        message: String,
    },
    /// It runs, and is unhealthy.
    Unhealthy {
        /// The controller's own words.
        message: String,
    },
    /// The controller runs the commit, synced and healthy, and yet not the image the
    /// target renders (a digest the file still pins, an entry that matches no container,
    /// a chart that composes another reference).
    Mismatch {
        /// What runs, what the file renders, and where.
        message: String,
    },
    /// The controller cannot be read, or says nothing usable.
    Unknown {
        /// Why.
        message: String,
    },
}

impl Deployment {
    /// `timeline` as it ran at `now`: its last value from its healthy rollout on. A value not (or
    /// not healthily) rolled out has not started running: where the controller is known to
    /// run an earlier change (`running`), that one runs — from when it turned healthy, or
    /// for no time when it is not healthy — and those after it have not started; where
    /// that is not known, what ran before still runs, unless the controller cannot be read
    /// at all: then nothing counts while it cannot (held where it is). A person's rollback stays, not
    /// started until it runs: what it rolled back from stops flowing at once (a person wins
    /// when in doubt), whatever the controller says.
    ///
    /// Changes before `in_force` (the one in force where the downstream's horizon starts)
    /// do not count: a controller running one of them runs none that counts.
    pub fn apply(
        &self,
        timeline: &mut Timeline,
        running: Option<&Running>,
        in_force: usize,
        now: Timestamp,
    ) {
        let changes = &mut timeline.changes;
        match self {
            // (Its start only: when what ran before stopped is the later value's commit,
            // or its first sighting — a rollout's time is when this one last turned
            // healthy, not when the other stopped.)
            Self::Deployed { since } => {
                if let Some(last) = changes.last_mut() {
                    last.resumed = last.resumed.max(Some(*since));
                }
            }
            Self::Unknown { .. }
            | Self::Deploying { .. }
            | Self::Unhealthy { .. }
            | Self::Mismatch { .. } => {
                let unknown = matches!(self, Self::Unknown { .. });
                let running = running.filter(|_| !unknown);
                let Some(running) = running else {
                    match changes.last_mut() {
                        // (A rollback stays, not started.)
                        Some(last) if last.rollback => last.resumed = last.resumed.max(Some(now)),
                        _ => {
                            changes.pop();
                        }
                    }
                    // Nothing known of what runs: what ran before is held where it is (its
                    // run counts again once the controller can say).
                    if let (true, Some(last)) = (unknown, changes.last_mut()) {
                        last.resumed = last.resumed.max(Some(now));
                    }
                    return;
                };
                if changes.is_empty() {
                    return;
                }
                let in_force = in_force.min(changes.len() - 1);
                let runs = running
                    .commit
                    .as_ref()
                    .and_then(|c| changes.iter().rposition(|x| x.commit.as_ref() == Some(c)))
                    .filter(|k| *k >= in_force);
                // A person's rollback stays, and with it what it says.
                let rollback = changes.iter().rposition(|c| c.rollback);
                let keep = runs.max(rollback).unwrap_or(in_force).max(in_force) + 1;
                changes.truncate(keep);
                // The change it runs, and any kept after it; none that counts: from the one
                // in force on.
                let from_run = runs.unwrap_or(in_force);
                for (i, c) in changes.iter_mut().enumerate().skip(from_run) {
                    let from = match (Some(i) == runs, running.healthy_since) {
                        (true, Some(since)) => since,
                        _ => now,
                    };
                    c.resumed = c.resumed.max(Some(from));
                }
            }
        }
    }
}

/// Which change of a verified environment its controller runs, when not its last (or not
/// healthily): what a value's soak counts from when the environment has moved on and the
/// controller has not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    /// The commit of the newest change the controller's revision reaches (`None`: none of
    /// those read).
    pub commit: Option<String>,
    /// Since when it runs it healthy (`None`: it does not).
    pub healthy_since: Option<Timestamp>,
}

/// When a controller's history says a value was rolled out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolledOut {
    /// First deployed then.
    At(Timestamp),
    /// Never: the history reaches back past its commit and no entry runs it.
    Never,
}

/// `timeline`'s earlier values (all but the last, which is [`Deployment::apply`]'s) as
/// their rollouts were seen: a value counts only with evidence it ran healthy — the last
/// time a pass saw it as the environment's value it ran healthy (`seen`: `Some(true)`; its
/// start is the ledger's), or, never seen so, its controller's history (`dates`, by
/// change) dates its first rollout. A value last seen not running healthy, or never seen
/// and not in the history, counts no time; one the history says was never deployed did
/// not run: what ran before it ran on. A person's rollback, and the value it rolled back
/// from, stay as made.
pub fn date_earlier(
    timeline: &mut Timeline,
    dates: &[Option<RolledOut>],
    seen: &dyn Fn(&crate::policy::Change) -> Option<bool>,
) {
    let changes = &mut timeline.changes;
    for i in (0..changes.len().saturating_sub(1)).rev() {
        if changes[i].rollback || changes[i + 1].rollback {
            continue;
        }
        let rolled_out = dates.get(i).copied().flatten();
        match (seen(&changes[i]), rolled_out) {
            // (The oldest value read, what ran before anything read, is taken as read: it is
            // what the downstream started from.)
            (None, None) if i == 0 => {}
            (Some(false), _) | (None, None) => {
                // It may have run, unhealthy: it counts no time (and what ran before it
                // stopped when it came).
                changes[i].resumed = changes[i].resumed.max(Some(changes[i + 1].replaced()));
            }
            (None, Some(RolledOut::Never)) => {
                changes.remove(i);
            }
            (_, Some(RolledOut::At(at))) => {
                let next = changes[i + 1].since;
                changes[i].since = changes[i].since.max(at).min(next);
            }
            (Some(true), _) => {}
        }
    }
}

/// Read the rollout of every environment of `rules` with `verify:` into `observed`.
pub async fn observe_deployments(
    rules: &Rules,
    clusters: &Clusters,
    repos: &BTreeMap<Destination, Repo>,
    observed: &mut Observed,
) {
    // Each verified environment, and whether another takes tags from it (then its earlier
    // values' rollouts matter too).
    type Verified<'r> = (
        EnvKey,
        Place,
        &'r Destination,
        bool,
        (&'r Promotion, &'r Environment),
    );
    let verified: Vec<Verified> = rules
        .promotions
        .iter()
        .flat_map(|p| {
            p.environments.iter().filter_map(move |env| {
                let v = env.verify.as_ref()?;
                let place = (v.cluster.clone(), v.controller.clone());
                let upstream = p
                    .environments
                    .iter()
                    .any(|e| e.from.as_ref() == Some(&env.name));
                Some((
                    EnvKey::of(p, env),
                    place,
                    &env.destination,
                    upstream,
                    (p, env),
                ))
            })
        })
        .collect();
    if verified.is_empty() {
        return;
    }
    let places: Vec<Place> = verified
        .iter()
        .map(|(_, place, ..)| place.clone())
        .collect();
    let rollouts = clusters.rollouts(&places).await;
    // Many environments share a controller revision (every Application of a repository on
    // its tip): each revision's ancestry is walked once.
    let mut ancestries = Ancestries {
        walked: HashMap::new(),
        tips: observed.tips.clone(),
    };
    let mut deployments = HashMap::with_capacity(verified.len());
    let mut judged = HashMap::new();
    let mut running = HashMap::new();
    let mut rolled_out = HashMap::new();
    for (key, place, destination, upstream, (p, env)) in verified {
        let set_by = observed
            .environments
            .get(&key)
            .and_then(|s| s.timeline.changes.last())
            .map(|c| (c.commit.clone(), c.since));
        if let Some((Some(commit), _)) = &set_by {
            judged.insert(key.clone(), commit.clone());
        }
        let deployment = match (rollouts.get(&place), set_by) {
            (None, _) => Deployment::Unknown {
                message: "not read".into(),
            },
            (Some(Err(e)), _) => Deployment::Unknown {
                message: e.to_string(),
            },
            (Some(Ok(_)), None | Some((None, _))) => Deployment::Unknown {
                message: "the commit that set its value is not known".into(),
            },
            (Some(Ok(rollout)), Some((Some(commit), landed))) => {
                let runs = match (
                    repos.get(destination),
                    ObjectId::from_hex(commit.as_bytes()),
                ) {
                    (Some(repo), Ok(commit)) => {
                        runs_commit(
                            repo,
                            destination,
                            &rollout.revisions,
                            commit,
                            &mut ancestries,
                        )
                        .await
                    }
                    _ => false,
                };
                let runs = match runs {
                    true => Ok(()),
                    false => Err(format!(
                        "the controller runs {}, not yet {}",
                        shown(&rollout.revisions),
                        short(&commit)
                    )),
                };
                // (What the target renders is worked out only when the controller says
                // what runs.)
                let missing = || match rollout.images.is_empty() {
                    true => None,
                    false => {
                        intended(p, env, observed).and_then(|i| i.missing_from(&rollout.images))
                    }
                };
                judge(&rollout.state, runs, landed, missing)
            }
        };
        // Moved on from what its controller runs, an upstream's soak needs to know which
        // of its changes that is.
        if let (true, false, Some(Ok(rollout)), Some(repo), Some(state)) = (
            upstream,
            matches!(
                deployment,
                Deployment::Deployed { .. } | Deployment::Unknown { .. }
            ),
            rollouts.get(&place),
            repos.get(destination),
            observed.environments.get(&key),
        ) {
            let changes = &state.timeline.changes;
            let run = running_change(repo, destination, rollout, changes, &mut ancestries).await;
            running.insert(key.clone(), run);
        }
        deployments.insert(key.clone(), deployment);
        if let (Some(Ok(rollout)), Some(repo), Some(state)) = (
            rollouts.get(&place),
            repos.get(destination),
            observed.environments.get(&key),
        ) && upstream
            && !rollout.history.is_empty()
        {
            let changes = &state.timeline.changes;
            let dates = date_rollouts(
                repo,
                destination,
                changes,
                &rollout.history,
                &mut ancestries,
            )
            .await;
            rolled_out.insert(key, dates);
        }
    }
    observed.deployments = deployments;
    observed.judged = judged;
    observed.running = running;
    observed.rolled_out = rolled_out;
}

/// What a controller's report says of the value whose commit landed at `landed`: `runs`,
/// whether the controller runs that commit (or a later one of the branch as fetched; else
/// why not), and `missing`, why what it runs lacks the image the target renders. A value
/// runs healthy from the later of its landing and when the controller says it turned
/// healthy.
pub(crate) fn judge(
    state: &RolloutState,
    runs: Result<(), String>,
    landed: Timestamp,
    missing: impl FnOnce() -> Option<String>,
) -> Deployment {
    match (state, runs) {
        (_, Err(message)) => Deployment::Deploying { message },
        (RolloutState::Healthy { since }, Ok(())) => match missing() {
            Some(message) => Deployment::Mismatch { message },
            None => Deployment::Deployed {
                since: since.map_or(landed, |s| s.max(landed)),
            },
        },
        (RolloutState::Pending { message }, Ok(())) => Deployment::Deploying {
            message: message.clone(),
        },
        (RolloutState::Degraded { message }, Ok(())) => Deployment::Unhealthy {
            message: message.clone(),
        },
        (RolloutState::Unknown { message }, Ok(())) => Deployment::Unknown {
            message: message.clone(),
        },
    }
}

/// Which of `changes` the controller of `rollout` runs: the newest whose commit its
/// revision reaches, healthy since when its state says — unless that is the last change,
/// which its deployment already says does not run healthy.
async fn running_change(
    repo: &Repo,
    destination: &Destination,
    rollout: &crate::deploy::Rollout,
    changes: &[crate::policy::Change],
    ancestries: &mut Ancestries,
) -> Running {
    for (i, c) in changes.iter().enumerate().rev() {
        let Some(commit) = c.commit.as_ref() else {
            continue;
        };
        let Ok(id) = ObjectId::from_hex(commit.as_bytes()) else {
            continue;
        };
        if runs_commit(repo, destination, &rollout.revisions, id, ancestries).await {
            let healthy_since = match (&rollout.state, i + 1 == changes.len()) {
                (RolloutState::Healthy { since }, false) => {
                    Some(since.map_or(c.since, |s| s.max(c.since)))
                }
                _ => None,
            };
            return Running {
                commit: Some(commit.clone()),
                healthy_since,
            };
        }
    }
    Running {
        commit: None,
        healthy_since: None,
    }
}

/// The reference an environment's (first) target renders at the tip, and where: what its
/// controller must run once it runs the commit.
#[derive(Debug, Clone)]
struct Intended {
    /// `file` and the place in it.
    place: String,
    /// What it renders.
    rendered: crate::manifest::reference::Rendered,
    /// The repository it names, where the file does not (a tag-only value).
    repository: crate::image::Repository,
}

fn intended(p: &Promotion, env: &Environment, observed: &Observed) -> Option<Intended> {
    let target = &env.target;
    let key = (env.destination.clone(), target.file().to_path_buf());
    let text = observed.files.get(&key)?.as_deref()?;
    let (rendered, _) = crate::manifest::rendered(text, &p.manifest_target_of(env, target))
        .ok()?
        .into_iter()
        .next()?;
    Some(Intended {
        place: p.target_id(env),
        rendered,
        repository: p.written_repository_of(target),
    })
}

impl Intended {
    /// Why `images` (what the controller says runs) lack the intended reference; `None`
    /// when they hold it, or cannot tell (no images listed, a tag left to the chart).
    fn missing_from(&self, images: &[String]) -> Option<String> {
        let tag = self.rendered.tag.as_deref()?;
        if images.is_empty() {
            return None;
        }
        let repository = match &self.rendered.repository {
            Some(r) => crate::image::Repository::new(r).ok()?,
            None => self.repository.clone(),
        };
        let ours: Vec<&String> = images
            .iter()
            .filter(|i| {
                crate::image::ImageRef::parse(i).is_ok_and(|r| r.repository.same_as(&repository))
            })
            .collect();
        let runs = ours.iter().any(|i| {
            crate::image::ImageRef::parse(i).is_ok_and(|r| match &self.rendered.digest {
                // The digest is what a runtime pulls.
                Some(d) => r.digest.as_ref().map(|x| x.as_str()) == Some(d.as_str()),
                None => r.tag.as_ref().map(|t| t.as_str()) == Some(tag),
            })
        });
        if runs {
            return None;
        }
        let running = match ours.is_empty() {
            true => images.join(", "),
            false => ours
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        };
        Some(format!(
            "synced to its commit, it runs {running}, not {} ({})",
            self.rendered, self.place
        ))
    }
}

/// When each of `changes` but the last was first rolled out, by `history` (oldest first):
/// the first entry that runs its commit and not the next change's; never, when the history
/// reaches back past the change and no entry does; `None` when it cannot be told (it was
/// replaced before the history starts, a commit is unknown). Each entry's ancestry is
/// walked once a pass (`ancestries`).
async fn date_rollouts(
    repo: &Repo,
    destination: &Destination,
    changes: &[crate::policy::Change],
    history: &[crate::deploy::Deployed],
    ancestries: &mut Ancestries,
) -> Vec<Option<RolledOut>> {
    let commit = |c: &crate::policy::Change| {
        c.commit
            .as_ref()
            .and_then(|id| ObjectId::from_hex(id.as_bytes()).ok())
    };
    let Some(oldest) = history.first().map(|d| d.at) else {
        return Vec::new();
    };
    // What each remembered rollout ran; `None` when the mirror cannot tell.
    let mut ran = Vec::with_capacity(history.len());
    for deployed in history {
        let lines = lines_of(repo, destination, &deployed.revisions, ancestries).await;
        ran.push((deployed.at, lines));
    }
    let runs = |lines: &[Arc<HashSet<ObjectId>>], c: ObjectId| lines.iter().any(|l| l.contains(&c));
    // "Never deployed" needs every entry read: one the mirror cannot tell may be it.
    let whole = ran.iter().all(|(_, lines)| lines.is_some());
    let mut dates = vec![None; changes.len()];
    for i in 0..changes.len().saturating_sub(1) {
        // Replaced before the history starts: it keeps its commit time.
        if changes[i + 1].since < oldest {
            continue;
        }
        let Some(this) = commit(&changes[i]) else {
            continue;
        };
        let next = commit(&changes[i + 1]);
        let first = ran.iter().find_map(|(at, lines)| {
            let lines = lines.as_deref()?;
            (runs(lines, this) && !next.is_some_and(|n| runs(lines, n))).then_some(*at)
        });
        dates[i] = match first {
            Some(at) => Some(RolledOut::At(at)),
            None if whole && oldest <= changes[i].since => Some(RolledOut::Never),
            None => None,
        };
    }
    dates
}

/// The ancestries walked in a pass (each (destination, commit) once), and the tips as
/// fetched now that a revision must be reachable from to count.
struct Ancestries {
    walked: HashMap<(Destination, ObjectId), Arc<HashSet<ObjectId>>>,
    tips: BTreeMap<Destination, ObjectId>,
}

impl Ancestries {
    /// The ancestry of `commit` in `repo` (itself included), walked once a pass.
    async fn walk(
        &mut self,
        repo: &Repo,
        destination: &Destination,
        commit: ObjectId,
    ) -> Arc<HashSet<ObjectId>> {
        let key = (destination.clone(), commit);
        if let Some(known) = self.walked.get(&key) {
            return Arc::clone(known);
        }
        let walked = Arc::new(repo.ancestry(commit).await);
        self.walked.insert(key, Arc::clone(&walked));
        walked
    }
}

/// The ancestry of `revision` in `repo` (itself included), walked once a pass — empty
/// when the branch as fetched now does not reach it: a commit force-pushed away may
/// linger in a warm mirror, and a fresh one never has it, so it says nothing either way.
async fn ancestry_of(
    repo: &Repo,
    destination: &Destination,
    revision: ObjectId,
    ancestries: &mut Ancestries,
) -> Arc<HashSet<ObjectId>> {
    let Some(tip) = ancestries.tips.get(destination).copied() else {
        return Arc::default();
    };
    if !ancestries
        .walk(repo, destination, tip)
        .await
        .contains(&revision)
    {
        return Arc::default();
    }
    ancestries.walk(repo, destination, revision).await
}

/// The ancestries of the commits among `revisions` (a chart's version is none); `None`
/// when one is not in the mirror, or is deeper than it walks: what ran is then unknown.
async fn lines_of(
    repo: &Repo,
    destination: &Destination,
    revisions: &[String],
    ancestries: &mut Ancestries,
) -> Option<Vec<Arc<HashSet<ObjectId>>>> {
    let mut lines = Vec::with_capacity(revisions.len());
    for revision in revisions {
        let Ok(id) = ObjectId::from_hex(revision.as_bytes()) else {
            continue;
        };
        let line = ancestry_of(repo, destination, id, ancestries).await;
        if line.is_empty() || line.len() >= crate::gitops::repo::MAX_ANCESTRY {
            return None;
        }
        lines.push(line);
    }
    Some(lines)
}

/// Whether one of `revisions` is `commit` or descends from it in `repo`.
async fn runs_commit(
    repo: &Repo,
    destination: &Destination,
    revisions: &[String],
    commit: ObjectId,
    ancestries: &mut Ancestries,
) -> bool {
    for revision in revisions {
        let Ok(id) = ObjectId::from_hex(revision.as_bytes()) else {
            continue;
        };
        if ancestry_of(repo, destination, id, ancestries)
            .await
            .contains(&commit)
        {
            return true;
        }
    }
    false
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn shown(revisions: &[String]) -> String {
    if revisions.is_empty() {
        return "no revision yet".into();
    }
    revisions
        .iter()
        .map(|r| short(r))
        .collect::<Vec<_>>()
        .join(" and ")
}
