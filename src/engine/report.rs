//! The report of a pass: every decision, what landed, what failed and why, timings; and
//! the state of each environment as `status` shows it. Alerts, metrics, `/status` and the
//! board read it; nothing here does I/O.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;

use super::apply::Applied;
use super::decide::EnvDecision;
use super::observe::EnvCommit;
use super::verify::Deployment;
use crate::gitops::GitError;
use crate::policy::{Block, Blocked, Decision, Hold};

/// One environment in a pass.
#[derive(Debug, Clone)]
pub struct EnvReport {
    /// The decision.
    pub decision: EnvDecision,
    /// What writing it did.
    pub applied: Applied,
    /// Its newest commits after the pass, newest first (the one it landed, then those
    /// observed; at most [`super::observe::RECENT`]).
    pub recent: Vec<EnvCommit>,
}

/// A whole pass.
#[derive(Debug, Clone)]
pub struct PassReport {
    /// The pass's time.
    pub now: Timestamp,
    /// How long it took.
    pub duration: Duration,
    /// The tip of each destination it decided on.
    pub tips: Vec<(crate::rules::Destination, String)>,
    /// Every environment, in the order of the rules.
    pub environments: Vec<EnvReport>,
    /// A failure of the whole pass (the repository could not be read).
    pub error: Option<GitError>,
    /// Registry requests made.
    pub registry_requests: u64,
    /// Pushes made.
    pub pushes: usize,
    /// The promotions it covers.
    pub scope: Scope,
    /// The files the bumps would change, for a pass that writes nothing (`plan`,
    /// `status`): the diff `plan` shows. Empty for a pass that writes.
    pub planned: Vec<super::bump::PlannedFile>,
}

/// Which promotions a pass covers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scope {
    /// Every promotion (the interval's pass, `once`, a push to the GitOps branch).
    #[default]
    All,
    /// These only (a webhook named their images).
    Promotions(BTreeSet<String>),
}

impl Scope {
    /// Whether it covers `promotion`.
    pub fn covers(&self, promotion: &str) -> bool {
        match self {
            Self::All => true,
            Self::Promotions(names) => names.contains(promotion),
        }
    }

    /// What both cover.
    pub fn union(self, other: Scope) -> Scope {
        match (self, other) {
            (Self::Promotions(mut a), Self::Promotions(b)) => {
                a.extend(b);
                Self::Promotions(a)
            }
            _ => Self::All,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::Promotions(names) => {
                f.write_str(&names.iter().cloned().collect::<Vec<_>>().join(","))
            }
        }
    }
}

/// An environment's state, as `status` names it.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// It runs the best eligible tag.
    UpToDate,
    /// A better tag soaks upstream.
    Soaking {
        /// When its soak completes.
        until: Timestamp,
    },
    /// A freeze window is open.
    Frozen {
        /// When it closes.
        until: Timestamp,
    },
    /// A person's rollback holds it.
    Held(Hold),
    /// A better tag is eligible and has not been written yet.
    Pending,
    /// A better tag has been eligible for longer than `stallAfter`.
    Stalled {
        /// Since when it has been eligible.
        since: Timestamp,
    },
    /// Proposed in an open pull request.
    InReview {
        /// Its number.
        number: u64,
        /// Where people review it.
        url: String,
    },
    /// A person closed the pull request for the best tag unmerged.
    Declined {
        /// Its number.
        number: u64,
        /// Where it is.
        url: String,
    },
    /// It runs a tag above the best one the policy accepts (a person set it): kept, never
    /// moved back.
    Ahead {
        /// The best tag the policy accepts.
        best: String,
    },
    /// A newer tag the policy accepts cannot be taken for a reason of its own (its
    /// platforms, its age, its metadata unreadable): not up to date, and saying why.
    Waiting {
        /// The best such tag (what holds it back is the decision's `waiting`).
        tag: String,
    },
    /// Its value is committed and its controller does not run it yet (`verify:`).
    Deploying {
        /// Since when: the commit's landing.
        since: Timestamp,
        /// The controller's own words.
        message: String,
    },
    /// Its controller runs its value, unhealthy (`verify:`).
    Unhealthy {
        /// The controller's own words.
        message: String,
    },
    /// Its controller runs the commit and yet not the image the target renders.
    Mismatch {
        /// What runs, what the file renders, and where.
        message: String,
    },
    /// Its controller cannot be read: whether its value runs is unknown (`verify:`).
    RolloutUnknown {
        /// Why.
        message: String,
    },
    /// Deciding or writing failed.
    Failing {
        /// The class (`registry`, `target`, `auth`, `rejected`, …).
        class: String,
        /// What went wrong.
        error: String,
    },
}

impl State {
    /// The state's name: `up-to-date`, `soaking`, `frozen`, `held`, `pending`, `stalled`,
    /// `failing`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::UpToDate => "up-to-date",
            Self::Soaking { .. } => "soaking",
            Self::Frozen { .. } => "frozen",
            Self::Held(_) => "held",
            Self::Pending => "pending",
            Self::Stalled { .. } => "stalled",
            Self::InReview { .. } => "in-review",
            Self::Declined { .. } => "declined",
            Self::Waiting { .. } => "waiting",
            Self::Ahead { .. } => "ahead",
            Self::Deploying { .. } => "deploying",
            Self::Unhealthy { .. } => "unhealthy",
            Self::Mismatch { .. } => "mismatch",
            Self::RolloutUnknown { .. } => "unknown",
            Self::Failing { .. } => "failing",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UpToDate | Self::Pending => f.write_str(self.name()),
            Self::Soaking { until } => write!(f, "soaking until {until}"),
            Self::Frozen { until } => write!(f, "frozen until {until}"),
            Self::Held(h) => {
                write!(f, "held by {}", h.by)?;
                match h.until {
                    Some(u) => write!(f, " until {u}"),
                    None => f.write_str(" until released"),
                }
            }
            Self::Stalled { since } => write!(f, "stalled since {since}"),
            Self::InReview { number, url } => write!(f, "in review: #{number} {url}"),
            Self::Declined { number, .. } => write!(f, "declined: #{number} closed unmerged"),
            Self::Waiting { tag, .. } => write!(f, "waiting for {tag}"),
            Self::Ahead { best } => write!(f, "ahead of {best}"),
            Self::Deploying { since, message } => write!(f, "deploying since {since}: {message}"),
            Self::Unhealthy { message } => write!(f, "unhealthy: {message}"),
            Self::Mismatch { message } => write!(f, "mismatch: {message}"),
            Self::RolloutUnknown { message } => write!(f, "rollout unknown: {message}"),
            Self::Failing { class, .. } => write!(f, "failing: {class}"),
        }
    }
}

impl EnvReport {
    /// The state at `now`.
    pub fn state(&self, now: Timestamp) -> State {
        let decided = self.decided_state(now);
        let Some(rollout) = &self.decision.rollout else {
            return decided;
        };
        // Where the decision leaves it settled, what runs is the rollout's to say.
        if !matches!(
            decided,
            State::UpToDate
                | State::Soaking { .. }
                | State::Waiting { .. }
                | State::Ahead { .. }
                | State::Pending
        ) {
            return decided;
        }
        if let Applied::Landed { .. } = self.applied {
            return State::Deploying {
                since: now,
                message: format!("committed; waiting for the {}", rollout.controller),
            };
        }
        match &rollout.deployment {
            Deployment::Deployed { .. } => decided,
            Deployment::Deploying { message } => State::Deploying {
                since: rollout.landed.unwrap_or(now),
                message: message.clone(),
            },
            Deployment::Unhealthy { message } => State::Unhealthy {
                message: format!("{} reports {message}", rollout.controller),
            },
            Deployment::Mismatch { message } => State::Mismatch {
                message: format!("{} {message}", rollout.controller),
            },
            Deployment::Unknown { message } => State::RolloutUnknown {
                message: message.clone(),
            },
        }
    }

    /// The state the decision and what was written give, before the rollout is heard.
    fn decided_state(&self, now: Timestamp) -> State {
        let d = &self.decision;
        let failing = |class: &str, error: String| State::Failing {
            class: class.to_string(),
            error,
        };
        let decided = match &d.outcome {
            Err(p) => return failing(p.class(), p.to_string()),
            Ok(decided) => decided,
        };
        // Why a newer tag is not taken: soaking first; then any other reason, the upstream's
        // included (a rollback there, a soak it cut short, a tag it skipped): a newer tag
        // the policy accepts waits, and the state says so.
        let soaking = |waiting: &[crate::policy::Waiting]| {
            let soaking = waiting.iter().find_map(|w| match w.block {
                Block::Soaking { until } => Some(State::Soaking { until }),
                _ => None,
            });
            soaking.or_else(|| {
                waiting.first().map(|w| State::Waiting {
                    tag: w.tag.to_string(),
                })
            })
        };
        match &decided.decision {
            Decision::Promote { waiting, .. } => match &self.applied {
                Applied::Landed { .. } | Applied::AlreadyInPlace => {
                    soaking(waiting).unwrap_or(State::UpToDate)
                }
                Applied::Failed(e) => failing(e.class(), e.to_string()),
                Applied::Declined { number, url } => State::Declined {
                    number: *number,
                    url: url.clone(),
                },
                Applied::Proposed { number, url } => match self.stalled_since(now) {
                    Some(since) => State::Stalled { since },
                    None => State::InReview {
                        number: *number,
                        url: url.clone(),
                    },
                },
                _ => match self.stalled_since(now) {
                    Some(since) => State::Stalled { since },
                    None => State::Pending,
                },
            },
            Decision::UpToDate { waiting, .. } => match self.stalled_since(now) {
                Some(since) => State::Stalled { since },
                None => soaking(waiting).unwrap_or(State::UpToDate),
            },
            Decision::Blocked {
                reason,
                waiting,
                to,
                ..
            } => match reason {
                Blocked::Frozen { until } => State::Frozen { until: *until },
                Blocked::Held(h) => State::Held(h.clone()),
                Blocked::Downgrade { .. } => State::Ahead {
                    best: to.as_ref().map(ToString::to_string).unwrap_or_default(),
                },
                Blocked::Unknown { .. } => failing("facts", reason.to_string()),
                Blocked::NothingEligible => match self.stalled_since(now) {
                    Some(since) => State::Stalled { since },
                    None => soaking(waiting).unwrap_or(if d.current.is_some() {
                        State::UpToDate
                    } else {
                        State::Pending
                    }),
                },
            },
        }
    }

    /// Which command lifts what blocks the environment, when a state blocks it: a hold is
    /// released, a freeze or a downgrade is a person's `promote`.
    pub fn lifted_by(&self, now: Timestamp) -> Option<String> {
        let (p, e) = (&self.decision.key.promotion, &self.decision.key.environment);
        match self.state(now) {
            State::Held(h) => Some(match h.until {
                Some(until) => format!(
                    "`tagpromoter release {p} --env {e}` lifts it (or it expires at {until})"
                ),
                None => format!("`tagpromoter release {p} --env {e}` lifts it"),
            }),
            State::Frozen { until } => Some(format!(
                "it ends at {until}; `tagpromoter promote {p} --env {e} --force --reason TEXT` goes through it"
            )),
            State::Ahead { best } => Some(format!(
                "`tagpromoter promote {p} --env {e} --tag {best}` moves it back to the best its policy accepts"
            )),
            State::Declined { .. } => Some(format!(
                "a newer tag is proposed by itself; `tagpromoter promote {p} --env {e}` writes this one"
            )),
            _ => None,
        }
    }

    /// Since when the tag to write has been eligible, when it has waited longer than
    /// `stallAfter` and this pass did not put it in place (a pull request still open, a
    /// failing push, …). A tag a person declined does not stall; nor do held or frozen
    /// environments, which are not promoting.
    pub fn stalled_since(&self, now: Timestamp) -> Option<Timestamp> {
        let Ok(decided) = &self.decision.outcome else {
            return None;
        };
        // A tag the upstream skipped waits forever: it stalls from when the upstream
        // moved past it.
        let waiting = match &decided.decision {
            Decision::UpToDate { waiting, .. }
            | Decision::Blocked {
                reason: crate::policy::Blocked::NothingEligible,
                waiting,
                ..
            } => waiting.as_slice(),
            _ => &[],
        };
        if let Some(Block::Skipped { since, .. }) = waiting.first().map(|w| &w.block) {
            let due = since.checked_add(self.decision.stall_after).ok()?;
            return (due <= now).then_some(*since);
        }
        let Decision::Promote {
            eligible_since: Some(since),
            ..
        } = &decided.decision
        else {
            return None;
        };
        if matches!(
            self.applied,
            Applied::Landed { .. } | Applied::AlreadyInPlace | Applied::Declined { .. }
        ) {
            return None;
        }
        let due = since.checked_add(self.decision.stall_after).ok()?;
        (due <= now).then_some(*since)
    }

    /// What the environment runs after this pass (the new tag when a bump landed).
    pub fn running(&self) -> Option<String> {
        match (&self.applied, self.decision.promotes_to()) {
            (Applied::Landed { .. } | Applied::AlreadyInPlace, Some(to)) => Some(to.to_string()),
            _ => self.decision.current.clone(),
        }
    }

    /// The problem of this environment in this pass, if any.
    pub fn problem(&self) -> Option<String> {
        match (&self.decision.outcome, &self.applied) {
            (Err(p), _) => Some(p.to_string()),
            (_, Applied::Failed(e)) => Some(e.to_string()),
            _ => None,
        }
    }
}

impl PassReport {
    /// What the pass did, as the metrics take it.
    pub fn figures(&self) -> crate::metrics::PassFigures {
        let (mut behind, mut stalled) = (0, 0);
        let mut rollouts = [0i64; crate::metrics::ROLLOUT_STATES.len()];
        let mut bumps = Vec::new();
        let mut succeeded = Vec::new();
        for e in &self.environments {
            let bump = match &e.applied {
                Applied::Landed { .. } => Some("landed"),
                Applied::Failed(_) => Some("failed"),
                Applied::Superseded { .. } => Some("superseded"),
                Applied::Skipped { .. } => Some("skipped"),
                Applied::Proposed { .. } => Some("proposed"),
                Applied::Declined { .. } => Some("declined"),
                Applied::AlreadyInPlace | Applied::Nothing => None,
            };
            bumps.extend(bump);
            let state = e.state(self.now);
            if let Some(i) = crate::metrics::ROLLOUT_STATES
                .iter()
                .position(|s| *s == state.name())
            {
                rollouts[i] += 1;
            }
            match state {
                State::Pending => behind += 1,
                State::Stalled { .. } => {
                    behind += 1;
                    stalled += 1;
                }
                State::Failing { .. } => {
                    if e.decision.promotes_to().is_some() {
                        behind += 1;
                    }
                    continue;
                }
                _ => {}
            }
            let key = &e.decision.key;
            succeeded.push((key.promotion.clone(), key.environment.clone()));
        }
        crate::metrics::PassFigures {
            duration: self.duration,
            failed: self.failed(),
            at: self.now.as_millisecond() as f64 / 1000.0,
            bumps,
            succeeded,
            fleet: (self.scope == Scope::All).then_some((behind, stalled)),
            rollouts,
        }
    }

    /// A pass at `now` over `environments`, nothing else known yet (no tip, no error, no
    /// requests or pushes counted, every promotion covered).
    pub fn new(now: Timestamp, environments: Vec<EnvReport>) -> Self {
        Self {
            now,
            duration: Duration::ZERO,
            tips: Vec::new(),
            environments,
            error: None,
            registry_requests: 0,
            pushes: 0,
            scope: Scope::All,
            planned: Vec::new(),
        }
    }

    /// This pass's report laid over `previous`: the environments of the promotions it
    /// covers are this pass's, the others (and any it could not decide because the
    /// repository could not be read) stay as `previous` saw them, in its order; those it
    /// did not know come last. Its scope stays this pass's, so that what counts events
    /// (alerts' listing failures) counts only what this pass did.
    pub fn laid_over(self, previous: &PassReport) -> PassReport {
        if self.scope == Scope::All {
            return self;
        }
        let mut fresh: Vec<Option<EnvReport>> = self.environments.into_iter().map(Some).collect();
        let mut environments = Vec::with_capacity(previous.environments.len().max(fresh.len()));
        for old in &previous.environments {
            let now = self
                .scope
                .covers(&old.decision.key.promotion)
                .then(|| {
                    fresh.iter_mut().find(|f| {
                        f.as_ref()
                            .is_some_and(|f| f.decision.key == old.decision.key)
                    })
                })
                .flatten()
                .and_then(Option::take);
            // Not covered, or not decided (the repository could not be read): as last seen.
            environments.push(now.unwrap_or_else(|| old.clone()));
        }
        environments.extend(fresh.into_iter().flatten());
        PassReport {
            environments,
            ..self
        }
    }

    /// Whether anything failed (the exit code of `once` and `plan`).
    pub fn failed(&self) -> bool {
        self.error.is_some() || self.environments.iter().any(|e| e.problem().is_some())
    }

    /// Bumps that landed.
    pub fn landed(&self) -> usize {
        self.environments
            .iter()
            .filter(|e| matches!(e.applied, Applied::Landed { .. }))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EnvKey;
    use crate::gitops::GitErrorKind;
    use crate::image::Repository;

    fn env(promotion: &str, environment: &str, current: &str) -> EnvReport {
        EnvReport {
            decision: EnvDecision {
                key: EnvKey {
                    promotion: promotion.into(),
                    environment: environment.into(),
                },
                destination: crate::rules::Destination {
                    repository: "default".into(),
                    branch: "main".into(),
                },
                image: Repository::new("ghcr.io/acme/app").unwrap(),
                file: "apps/x.yaml".into(),
                write: crate::rules::WriteMode::Push,
                stall_after: jiff::SignedDuration::from_hours(1),
                current: Some(current.into()),
                outcome: Err(super::super::Problem::Target(GitError::new(
                    GitErrorKind::Target,
                    "reading",
                    "test",
                ))),
                rollout: None,
            },
            applied: Applied::Nothing,
            recent: Vec::new(),
        }
    }

    fn report(scope: Scope, environments: Vec<EnvReport>) -> PassReport {
        PassReport {
            scope,
            ..PassReport::new(Timestamp::UNIX_EPOCH, environments)
        }
    }

    fn running(r: &PassReport) -> Vec<String> {
        r.environments
            .iter()
            .map(|e| format!("{}={}", e.decision.key, e.running().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn a_webhooks_pass_replaces_only_what_it_covers() {
        let full = report(
            Scope::All,
            vec![
                env("a", "dev", "1"),
                env("b", "dev", "1"),
                env("b", "prod", "1"),
            ],
        );
        let b = Scope::Promotions(["b".to_string(), "c".to_string()].into());
        let scoped = report(b.clone(), vec![env("b", "dev", "2"), env("c", "dev", "9")]);
        let laid = scoped.laid_over(&full);
        // b/prod was not decided (as when the repository could not be read): kept.
        assert_eq!(
            running(&laid),
            ["a/dev=1", "b/dev=2", "b/prod=1", "c/dev=9"]
        );
        assert_eq!(laid.scope, b);
        let again = report(Scope::All, vec![env("a", "dev", "3")]);
        assert_eq!(
            running(&again.laid_over(&laid)),
            ["a/dev=3"],
            "a full pass stands alone"
        );
    }
}
