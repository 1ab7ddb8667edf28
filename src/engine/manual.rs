//! A person's `promote` and `release`: one decision of their own, written with their name
//! and reason in the trailers. A rollback (a tag the policy ranks below the current one)
//! holds the environment until `release` or `--hold-for` runs out; `--force` bypasses soak,
//! freeze and `from` and must say why. Never writes a tag the registry does not list.

use jiff::{SignedDuration, Timestamp};

use super::{Engine, EnvKey};
use crate::gitops::message::{Actor, HoldChange, Record};
use crate::gitops::{Bump, Outcome};
use crate::image::{Tag, created_of};
use crate::policy::{Decision, Situation, freeze};
use crate::rules::Rules;

/// What a person asks `promote` for.
#[derive(Debug, Clone)]
pub struct PromoteRequest {
    /// The promotion.
    pub promotion: String,
    /// The environment.
    pub environment: String,
    /// The tag; the best eligible one when absent.
    pub tag: Option<Tag>,
    /// Why (required with `force`).
    pub reason: Option<String>,
    /// Bypass soak, freeze and `from`.
    pub force: bool,
    /// Hold the environment for this long.
    pub hold_for: Option<SignedDuration>,
    /// Who asks.
    pub actor: String,
}

/// Why a manual request did not land.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ManualError {
    /// The request is refused as asked (exit 2); the message says why and what to do.
    #[error("{0}")]
    Refused(String),
    /// Writing failed (exit 1).
    #[error("{0}")]
    Failed(String),
}

/// What a manual request did.
#[derive(Debug, Clone, PartialEq)]
pub enum ManualOutcome {
    /// Committed and pushed.
    Landed {
        /// The record written.
        record: Box<Record>,
        /// The commit.
        commit: String,
    },
    /// Nothing to do, and why.
    Nothing(String),
}

fn only(rules: &Rules, promotion: &str, environment: &str) -> Result<Rules, ManualError> {
    let p = rules
        .promotions
        .iter()
        .find(|p| p.name == promotion)
        .ok_or_else(|| {
            let names: Vec<&str> = rules.promotions.iter().map(|p| p.name.as_str()).collect();
            ManualError::Refused(format!(
                "no promotion {promotion:?} in the rules; there are: {}",
                names.join(", ")
            ))
        })?;
    if !p.environments.iter().any(|e| e.name == environment) {
        let names: Vec<&str> = p.environments.iter().map(|e| e.name.as_str()).collect();
        return Err(ManualError::Refused(format!(
            "promotion {promotion:?} has no environment {environment:?}; it has: {}",
            names.join(", ")
        )));
    }
    Ok(Rules {
        settings: rules.settings.clone(),
        promotions: vec![p.clone()],
    })
}

impl Engine {
    /// A person's promotion (see the module's doc).
    pub async fn promote(
        &self,
        req: &PromoteRequest,
        now: Timestamp,
    ) -> Result<ManualOutcome, ManualError> {
        if req.force && req.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
            return Err(ManualError::Refused(
                "--force bypasses soak, freeze and from, and needs --reason to say why".into(),
            ));
        }
        let rules = only(&self.rules, &req.promotion, &req.environment)?;
        let plan = self
            .plan_for(&rules, now)
            .await
            .map_err(|e| ManualError::Failed(e.to_string()))?;
        let p = &rules.promotions[0];
        let env = p
            .environments
            .iter()
            .find(|e| e.name == req.environment)
            .ok_or_else(|| ManualError::Refused("no such environment".into()))?;
        let key = EnvKey::of(p, env);
        let tags = match plan.observed.images.get(&p.image) {
            Some(Ok(list)) => &list.tags,
            Some(Err(e)) => return Err(ManualError::Failed(e.to_string())),
            None => return Err(ManualError::Failed(format!("{} was not listed", p.image))),
        };
        let state = plan
            .observed
            .environments
            .get(&key)
            .ok_or_else(|| ManualError::Failed(format!("{key} was not observed")))?;
        let current = state
            .current
            .clone()
            .map_err(|e| ManualError::Failed(e.to_string()))?;
        let decided = plan
            .decisions
            .iter()
            .find(|d| d.key == key)
            .and_then(|d| d.outcome.as_ref().ok());
        let policy = p.tag_policy(env);
        let gates = p.gates(env);
        let mut facts = plan
            .observed
            .facts
            .get(&p.image)
            .cloned()
            .unwrap_or_default();
        let selection = policy.select(tags, &|t: &str| created_of(&facts, t));
        let hold = plan.observed.hold(p, env);
        let refuse_unless_forced = |why: String| {
            if req.force {
                Ok(())
            } else {
                Err(ManualError::Refused(format!(
                    "{why}; --force --reason TEXT bypasses soak, freeze and from"
                )))
            }
        };
        let tag = match &req.tag {
            Some(t) => {
                if !tags.contains(t) {
                    return Err(ManualError::Refused(format!(
                        "{} has no tag {t} in the registry; tagpromoter only writes tags the registry lists",
                        p.image
                    )));
                }
                if let Some(why) = selection
                    .why_not(t.as_str())
                    .filter(|r| !matches!(r, crate::policy::Rejection::Older { .. }))
                {
                    refuse_unless_forced(format!("{t} does not pass the policy: {why}"))?;
                }
                t.clone()
            }
            None if req.force => selection.winner().cloned().ok_or_else(|| {
                ManualError::Refused(format!("no tag of {} passes the policy", p.image))
            })?,
            None => match decided.map(|d| &d.decision) {
                Some(Decision::Promote { to, .. }) => to.clone(),
                Some(Decision::Blocked { to: Some(to), .. }) => to.clone(),
                Some(Decision::UpToDate { current, .. }) => {
                    return Ok(ManualOutcome::Nothing(format!(
                        "{key} already runs {current}, the best eligible tag"
                    )));
                }
                _ => {
                    return Err(ManualError::Refused(format!(
                        "no tag is eligible for {key}; name one with --tag"
                    )));
                }
            },
        };
        // Without --tag, only forward from what runs, forced or not: a rollback is always
        // a person naming the tag.
        let created = |t: &str| created_of(&facts, t);
        if req.tag.is_none()
            && current.as_deref() != Some(tag.as_str())
            && super::holds::promote_holds(&policy, tag.as_str(), current.as_deref(), &created)
        {
            return Err(ManualError::Refused(format!(
                "{key} runs {}, and the best eligible tag {tag} is not newer; name a tag with --tag to roll back",
                current.as_deref().unwrap_or("nothing")
            )));
        }
        // The chosen tag's facts: for its gates, and for the digest in the trailer.
        if !facts.contains_key(&tag) {
            match self.registry.facts(&p.image, &tag).await {
                Ok(f) => {
                    facts.insert(tag.clone(), f);
                }
                Err(e) => {
                    tracing::warn!(image = %p.image, tag = %tag, error = %e, "cannot read the image's metadata")
                }
            }
        }
        let facts = &facts;
        let created = |t: &str| created_of(facts, t);
        let upstream = plan.observed.upstream(p, env, now);
        let current_tag = current.as_deref().and_then(|c| Tag::new(c).ok());
        let situation = Situation {
            now,
            current: current_tag.as_ref(),
            hold: hold.as_ref(),
            upstream: upstream.as_ref(),
            facts,
        };
        // An incident rollback is not break-glass: back to a tag this environment ran, with
        // a reason, goes in a freeze and whatever `from` says.
        let ran_here = !state.timeline.residencies(&tag).is_empty();
        let incident = ran_here && req.tag.is_some() && req.reason.is_some();
        if !incident {
            if let Err(block) = gates.eligibility(&tag, &situation) {
                refuse_unless_forced(format!("{tag} is not eligible for {key}: {block}"))?;
            }
            if let Some(until) = freeze::frozen_until(&gates.freeze, now) {
                refuse_unless_forced(format!("{key} is frozen until {until}"))?;
            }
        }
        if current.as_deref() == Some(tag.as_str()) {
            return Ok(ManualOutcome::Nothing(format!("{key} already runs {tag}")));
        }
        let rollback =
            super::holds::promote_holds(&policy, tag.as_str(), current.as_deref(), &created);
        let hold = (rollback || req.hold_for.is_some()).then(|| HoldChange::Set {
            until: req.hold_for.and_then(|d| now.checked_add(d).ok()),
        });
        let digest = facts.get(&tag).map(|f| f.digest.clone());
        if env.pin_digest && digest.is_none() {
            return Err(ManualError::Failed(format!(
                "the digest of {tag} could not be read, and pinDigest needs it"
            )));
        }
        let record = Record {
            from: current_tag.clone(),
            digest,
            reason: req.reason.clone(),
            forced: req.force,
            hold,
            ..super::bump::record(
                &rules.settings,
                p,
                env,
                Some(tag.clone()),
                Actor::Person(req.actor.clone()),
            )
        };
        let bump = super::bump::with_record(p, env, record.clone(), current);
        self.write(&env.destination, bump, record, now).await
    }

    /// Lift the hold on an environment (an empty commit with `Tagpromoter-Hold: released`);
    /// also where its history is too long to tell whether one is in force: the release is
    /// then where its history starts.
    pub async fn release(
        &self,
        promotion: &str,
        environment: &str,
        actor: &str,
        reason: Option<String>,
        now: Timestamp,
    ) -> Result<ManualOutcome, ManualError> {
        let rules = only(&self.rules, promotion, environment)?;
        let plan = self
            .plan_for(&rules, now)
            .await
            .map_err(|e| ManualError::Failed(e.to_string()))?;
        let p = &rules.promotions[0];
        let key = EnvKey {
            promotion: promotion.into(),
            environment: environment.into(),
        };
        let state = plan
            .observed
            .environments
            .get(&key)
            .ok_or_else(|| ManualError::Failed(format!("{key} was not observed")))?;
        let env = p
            .environments
            .iter()
            .find(|e| e.name == environment)
            .ok_or_else(|| ManualError::Refused("no such environment".into()))?;
        // A history too long to read back to a reset holds the environment in doubt; a
        // release is the reset it lacks.
        let held = plan.observed.hold(p, env).is_some_and(|h| h.active(now));
        if !held && state.complete {
            return Ok(ManualOutcome::Nothing(format!("{key} is not held")));
        }
        // Whatever the target holds — a tag, a digest alone, nothing the policy can
        // order — the release is recorded; the tag, when there is one, names it.
        let current = state
            .current
            .clone()
            .map_err(|e| ManualError::Failed(e.to_string()))?
            .and_then(|c| Tag::new(&c).ok());
        let record = Record {
            from: current.clone(),
            reason,
            hold: Some(HoldChange::Released),
            ..super::bump::record(
                &rules.settings,
                p,
                env,
                current,
                Actor::Person(actor.into()),
            )
        };
        let bump = super::bump::with_record(p, env, record.clone(), None);
        self.write(&env.destination, bump, record, now).await
    }

    async fn write(
        &self,
        destination: &crate::rules::Destination,
        bump: Bump,
        record: Record,
        now: Timestamp,
    ) -> Result<ManualOutcome, ManualError> {
        let repo = self
            .repo(destination)
            .ok_or_else(|| ManualError::Failed(format!("no mirror of {destination} is open")))?;
        let report = repo
            .apply(&[bump], now)
            .await
            .map_err(|e| ManualError::Failed(e.to_string()))?;
        match report.outcomes.into_iter().next().map(|(_, o)| o) {
            Some(Outcome::Landed(id)) => Ok(ManualOutcome::Landed {
                record: Box::new(record),
                commit: id.to_string(),
            }),
            Some(Outcome::AlreadyInPlace) => Ok(ManualOutcome::Nothing(
                "the value is already in place".into(),
            )),
            Some(Outcome::Superseded { found }) => Err(ManualError::Failed(format!(
                "someone changed the target meanwhile (it now holds {}); run the command again",
                found.as_deref().unwrap_or("nothing")
            ))),
            Some(Outcome::Failed(e)) => Err(ManualError::Failed(e.to_string())),
            None => Err(ManualError::Failed("nothing was written".into())),
        }
    }
}
