//! Small builders for the table tests of `decide` and the alert rules (in the manner of
//! controller-rs's `fixtures.rs`): rules from a few lines of YAML, and what a pass observed
//! from a registry's tags and each target's history written as steps. The history goes
//! through the same reading (`observe::env_state`) a real repository's does. Test-only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};

use super::apply::Applied;
use super::decide::{self, Decided, EnvDecision};
use super::observe::{EnvKey, Observed, env_state};
use super::report::{EnvReport, PassReport};
use crate::gitops::message::{Actor, HoldChange, Record};
use crate::gitops::sightings::Sightings;
use crate::gitops::{Entry, TargetHistory, Value};
use crate::image::{Digest, ImageFacts, Repository, Tag};
use crate::policy::{Blocked, Decision};
use crate::rules::Rules;

/// The image every fixture promotes.
pub const IMAGE: &str = "ghcr.io/acme/app";

/// `hours` after 2026-11-01T00:00:00Z.
pub fn at(hours: i64) -> Timestamp {
    let start: Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
    start + SignedDuration::from_hours(hours)
}

/// Rules with one promotion `app` of [`IMAGE`] whose environments are `environments`
/// (YAML list items at four spaces; each gets a Helm target `apps/<name>.yaml`).
pub fn rules(environments: &str) -> Rules {
    let settings = "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git:\n    url: https://git.example.com/acme/gitops.git\n    author: { name: tagpromoter, email: bot@example.com }\n";
    let promotion = format!(
        "apiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: app }}\nspec:\n  image: {IMAGE}\n  environments:\n{environments}"
    );
    crate::rules::parse_sources(
        Path::new("rules"),
        &[
            (PathBuf::from("settings.yaml"), settings.to_string()),
            (PathBuf::from("app.yaml"), promotion),
        ],
    )
    .unwrap_or_else(|d| panic!("{d:?}"))
}

/// A deterministic digest for `tag` (another for each `generation` of a re-pushed tag).
pub fn digest(tag: &str, generation: u8) -> Digest {
    let hex: String = tag.bytes().map(|b| format!("{b:02x}")).collect();
    Digest::new(&format!("sha256:{generation:02x}{hex:0<62}")).unwrap()
}

/// One commit of a target's history.
#[derive(Debug, Clone)]
pub enum Step {
    /// A person sets the value by hand.
    Hand {
        /// When.
        at: Timestamp,
        /// The value.
        to: &'static str,
    },
    /// The bot writes `to` (with the digest of its first generation).
    Bot {
        /// When.
        at: Timestamp,
        /// The tag.
        to: &'static str,
    },
    /// `promote` by alice, setting a hold when `hold`.
    Promote {
        /// When.
        at: Timestamp,
        /// The tag.
        to: &'static str,
        /// Whether it holds.
        hold: bool,
    },
    /// `release` by alice.
    Release {
        /// When.
        at: Timestamp,
    },
    /// A person commits the file so that the target cannot be read (broken YAML).
    Broken {
        /// When.
        at: Timestamp,
    },
}

/// What a pass observed, built up step by step.
pub struct World {
    /// The rules.
    pub rules: Rules,
    /// What was observed.
    pub observed: Observed,
}

impl World {
    /// The rules observed with no tags, every target holding `initial` since [`at`]`(0)`.
    pub fn new(rules: Rules, initial: &str) -> Self {
        let image = Repository::new(IMAGE).unwrap();
        let mut world = Self {
            observed: Observed {
                tips: Default::default(),
                unreadable: Default::default(),
                images: HashMap::from([(image, Ok(Default::default()))]),
                facts: HashMap::new(),
                environments: HashMap::new(),
                files: HashMap::new(),
                deployments: HashMap::new(),
                rolled_out: HashMap::new(),
                judged: HashMap::new(),
                running: HashMap::new(),
                sightings: HashMap::new(),
            },
            rules,
        };
        let names: Vec<String> = world.rules.promotions[0]
            .environments
            .iter()
            .map(|e| e.name.clone())
            .collect();
        for env in names {
            world = world.history(&env, initial, true, &[]);
        }
        world
    }

    /// The registry lists `tags`, each built `hours` after [`at`]`(0)` as given.
    pub fn tags(mut self, tags: &[(&str, i64)]) -> Self {
        let image = Repository::new(IMAGE).unwrap();
        let listed: crate::registry::TagList =
            tags.iter().map(|(t, _)| Tag::new(t).unwrap()).collect();
        self.observed
            .images
            .insert(image.clone(), Ok(std::sync::Arc::new(listed)));
        let facts = self.observed.facts.entry(image).or_default();
        for (t, hours) in tags {
            facts.insert(
                Tag::new(t).unwrap(),
                ImageFacts {
                    digest: digest(t, 0),
                    platforms: vec!["linux/amd64".into()],
                    created: Some(at(*hours)),
                    labels: Default::default(),
                    depth: crate::image::Depth::Whole,
                },
            );
        }
        self
    }

    /// Change one tag's facts.
    pub fn facts(mut self, tag: &str, change: impl FnOnce(&mut ImageFacts)) -> Self {
        let image = Repository::new(IMAGE).unwrap();
        let facts = self.observed.facts.entry(image).or_default();
        if let Some(f) = facts.get_mut(tag) {
            change(f);
        }
        self
    }

    /// Forget one tag's facts (its manifest could not be read, or it was deleted).
    pub fn uninspected(mut self, tag: &str) -> Self {
        let image = Repository::new(IMAGE).unwrap();
        if let Some(f) = self.observed.facts.get_mut(&image) {
            f.remove(tag);
        }
        self
    }

    /// `env`'s target history: `initial` at [`at`]`(0)` (`""`: the file does not exist
    /// yet), then `steps`; read to the first commit when `from_start`, else as a shallow
    /// mirror would stop at the first step.
    pub fn history(mut self, env: &str, initial: &str, from_start: bool, steps: &[Step]) -> Self {
        let p = &self.rules.promotions[0];
        let e = p
            .environments
            .iter()
            .find(|e| e.name == env)
            .unwrap_or_else(|| panic!("no environment {env}"));
        let target = Some(p.target_id(e));
        let record = |to: &str, actor: Actor, hold: Option<HoldChange>| Record {
            promotion: p.name.clone(),
            environment: env.to_string(),
            image: p.image.clone(),
            from: None,
            to: Some(Tag::new(to).unwrap()),
            digest: (actor == Actor::Bot).then(|| digest(to, 0)),
            actor,
            reason: Some("because".into()),
            forced: false,
            hold,
            target: target.clone(),
            identity: None,
        };
        let value = |tag: &str| {
            Some(Value {
                tag: (!tag.is_empty()).then(|| tag.to_string()),
                digest: None,
                readable: true,
            })
        };
        // Each commit its own id: the environment's place, then the step's.
        let place = p
            .environments
            .iter()
            .position(|x| x.name == env)
            .unwrap_or(0) as u8;
        let mut made = 0u8;
        let mut entry = |time, author: &str, record: Option<Record>, value: Option<Value>| Entry {
            id: {
                made += 1;
                let mut id = [0u8; 20];
                id[0] = place + 1;
                id[1] = made;
                gix::ObjectId::from_bytes_or_panic(&id)
            },
            time,
            author: author.to_string(),
            subject: String::new(),
            record,
            value,
        };
        let mut entries = vec![entry(at(0), "bob", None, value(initial))];
        let mut current = initial.to_string();
        for step in steps {
            entries.push(match step {
                Step::Hand { at, to } => {
                    current = to.to_string();
                    entry(*at, "bob", None, value(to))
                }
                Step::Bot { at, to } => {
                    current = to.to_string();
                    entry(
                        *at,
                        "tagpromoter",
                        Some(record(to, Actor::Bot, None)),
                        value(to),
                    )
                }
                Step::Promote { at, to, hold } => {
                    current = to.to_string();
                    let hold = hold.then_some(HoldChange::Set { until: None });
                    let alice = Actor::Person("alice".into());
                    entry(*at, "tagpromoter", Some(record(to, alice, hold)), value(to))
                }
                Step::Release { at } => {
                    let alice = Actor::Person("alice".into());
                    let released = record(&current, alice, Some(HoldChange::Released));
                    entry(*at, "tagpromoter", Some(released), None)
                }
                Step::Broken { at } => {
                    let broken = Value {
                        tag: None,
                        digest: None,
                        readable: false,
                    };
                    entry(*at, "bob", None, Some(broken))
                }
            });
        }
        let history = TargetHistory {
            current: Ok(Value {
                tag: Some(current),
                digest: None,
                readable: true,
            }),
            entries,
            from_start,
        };
        let key = EnvKey::of(p, e);
        let state = env_state(&history);
        // The bot saw each change as it landed (the ledger of every environment downstream).
        for downstream in p
            .environments
            .iter()
            .filter(|d| d.from.as_deref() == Some(env))
        {
            let (ledger, _) = self
                .observed
                .sightings
                .entry(downstream.destination.clone())
                .or_default();
            let seen = state.timeline.changes.iter().filter_map(|c| {
                let seen = (c.since, c.value.clone().unwrap_or_default());
                Some((
                    (super::sightings::upstream_name(p, e), c.commit.clone()?),
                    seen,
                ))
            });
            *ledger = ledger.updated(seen.collect::<Vec<_>>(), &Default::default());
        }
        self.observed.environments.insert(key, state);
        self
    }

    /// The bot never saw any change of `env` (no ledger where it soaks, or its write failed).
    pub fn unsighted(mut self, env: &str) -> Self {
        let p = &self.rules.promotions[0];
        for downstream in p
            .environments
            .iter()
            .filter(|d| d.from.as_deref() == Some(env))
        {
            self.observed.sightings.remove(&downstream.destination);
        }
        self
    }

    /// The bot first saw `env`'s change `index` (0: the initial value) at `seen`, not as it
    /// landed (its commit carries an earlier date than it reached the branch).
    pub fn sighted(mut self, env: &str, index: usize, seen: Timestamp) -> Self {
        let p = &self.rules.promotions[0];
        let key = EnvKey {
            promotion: p.name.clone(),
            environment: env.to_string(),
        };
        let Some(state) = self.observed.environments.get(&key) else {
            return self;
        };
        // The downstream's ledger made again from this history, one sighting moved.
        let Some(up) = p.environments.iter().find(|x| x.name == env) else {
            return self;
        };
        let name = super::sightings::upstream_name(p, up);
        let seen: Vec<_> = state
            .timeline
            .changes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let at = if i == index { seen } else { c.since };
                let value = c.value.clone().unwrap_or_default();
                Some(((name.clone(), c.commit.clone()?), (at, value)))
            })
            .collect();
        for downstream in p
            .environments
            .iter()
            .filter(|d| d.from.as_deref() == Some(env))
        {
            let ledger = Sightings::default().updated(seen.clone(), &Default::default());
            self.observed
                .sightings
                .insert(downstream.destination.clone(), (ledger, None));
        }
        self
    }

    /// A pass saw `env`'s change `index` (0: the initial value) as `env`'s value, its rollout
    /// healthy since `at` (`healthy`), or not running healthy at `at`: kept in the ledger of
    /// each environment taking tags from `env`.
    pub fn rollout_seen(mut self, env: &str, index: usize, at: Timestamp, healthy: bool) -> Self {
        let p = &self.rules.promotions[0];
        let key = EnvKey {
            promotion: p.name.clone(),
            environment: env.to_string(),
        };
        let (Some(state), Some(up)) = (
            self.observed.environments.get(&key),
            p.environments.iter().find(|x| x.name == env),
        ) else {
            return self;
        };
        let Some(change) = state.timeline.changes.get(index) else {
            return self;
        };
        let seen = (
            (
                super::sightings::upstream_name(p, up),
                change.commit.clone().unwrap_or_default(),
            ),
            crate::gitops::sightings::Rollout {
                at,
                value: change.value.clone().unwrap_or_default(),
                healthy,
            },
        );
        for downstream in p
            .environments
            .iter()
            .filter(|d| d.from.as_deref() == Some(env))
        {
            let ledger = self
                .observed
                .sightings
                .entry(downstream.destination.clone())
                .or_default();
            ledger.0 = ledger.0.clone().with_rollouts([seen.clone()]);
        }
        self
    }

    /// `env`'s controller reports `deployment` (the environment needs `verify:`).
    pub fn deployment(mut self, env: &str, deployment: super::verify::Deployment) -> Self {
        let key = EnvKey {
            promotion: self.rules.promotions[0].name.clone(),
            environment: env.to_string(),
        };
        self.observed.deployments.insert(key, deployment);
        self
    }

    /// `env`'s controller's history dates the rollout of the value its change `index` set
    /// (0: the initial value).
    pub fn rolled_out(mut self, env: &str, index: usize, rolled: super::verify::RolledOut) -> Self {
        let key = EnvKey {
            promotion: self.rules.promotions[0].name.clone(),
            environment: env.to_string(),
        };
        let changes = self
            .observed
            .environments
            .get(&key)
            .map_or(0, |s| s.timeline.changes.len());
        let dates = self
            .observed
            .rolled_out
            .entry(key)
            .or_insert_with(|| vec![None; changes]);
        dates[index] = Some(rolled);
        self
    }

    /// The forge cannot say when `env`'s pull requests merged.
    pub fn merges_unknown(mut self, env: &str) -> Self {
        let key = EnvKey {
            promotion: self.rules.promotions[0].name.clone(),
            environment: env.to_string(),
        };
        if let Some(state) = self.observed.environments.get_mut(&key) {
            state.landing_unknown = Some(crate::forge::ForgeError {
                kind: crate::forge::ForgeErrorKind::Network,
                forge: "github (api.github.com)".into(),
                step: "finding the pull request that merged 0123abc".into(),
                detail: "502 Bad Gateway".into(),
            });
        }
        self
    }

    /// Every environment's decision at `now`.
    pub fn decide(&self, now: Timestamp) -> Vec<EnvDecision> {
        decide::decide(&self.rules, &self.observed, now)
    }

    /// `env`'s decision at `now`.
    pub fn decision(&self, env: &str, now: Timestamp) -> EnvDecision {
        self.decide(now)
            .into_iter()
            .find(|d| d.key.environment == env)
            .unwrap_or_else(|| panic!("no decision for {env}"))
    }

    /// A pass at `now` that wrote nothing (`applied` changes one environment's outcome).
    pub fn report(&self, now: Timestamp, applied: &[(&str, Applied)]) -> PassReport {
        let environments = self
            .decide(now)
            .into_iter()
            .map(|decision| EnvReport {
                applied: applied
                    .iter()
                    .find(|(env, _)| *env == decision.key.environment)
                    .map_or(Applied::Nothing, |(_, a)| a.clone()),
                decision,
                recent: Vec::new(),
            })
            .collect();
        PassReport::new(now, environments)
    }
}

/// A decision in a few words, for tables: `promote 1.1.0`, `up-to-date`, `held by bob`,
/// `downgrade`, `unknown`, `nothing eligible`, `frozen`, `error <class>`.
/// A decision in a few words.
pub fn summary(d: &EnvDecision) -> String {
    let decided: &Decided = match &d.outcome {
        Ok(decided) => decided,
        Err(p) => return format!("error {}", p.class()),
    };
    match &decided.decision {
        Decision::UpToDate { .. } => "up-to-date".into(),
        Decision::Promote { to, .. } => format!("promote {to}"),
        Decision::Blocked { reason, .. } => match reason {
            Blocked::Held(h) => format!("held by {}", h.by),
            Blocked::Downgrade { .. } => "downgrade".into(),
            Blocked::Unknown { .. } => "unknown".into(),
            Blocked::Frozen { .. } => "frozen".into(),
            Blocked::NothingEligible => "nothing eligible".into(),
        },
    }
}
