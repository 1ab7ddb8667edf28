//! Decide: `rules × observed × now → Decision` for every promotion and environment. Pure:
//! no I/O, no clock; `plan`, `once`, `run`, `status` and `promote` all start here.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use jiff::{SignedDuration, Timestamp};

use super::observe::{EnvKey, Observed};
use crate::gitops::GitError;
use crate::image::{Depth, Digest, Repository, Tag, created_of};
use crate::policy::{Decision, Rejection, Situation};
use crate::registry::RegistryError;
use crate::rules::{Destination, Rules, WriteMode};

/// Why an environment could not be decided.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    /// Its image's tags could not be listed.
    #[error("{0}")]
    Registry(RegistryError),
    /// Its target cannot be read (missing file, key, alias, …).
    #[error("{0}")]
    Target(GitError),
    /// The repository it writes to (or its upstream's) cannot be read (unreachable,
    /// credentials, no such branch); environments writing elsewhere go on.
    #[error("{0}")]
    Repository(GitError),
    /// Its history cannot be read back as far as the decision needs (the commit that set
    /// its value, holds after it): deciding on part of it could undo a person's change.
    #[error(
        "its history could not be read back to the commit that set its current value and a hold's release or the bot's own write (the walk stops after {max} commits), so a person's hold cannot be ruled out; `tagpromoter release` on this environment records that nothing before it holds",
        max = crate::gitops::history::MAX_COMMITS
    )]
    History,
    /// `pinDigest` is set and the winner's digest could not be read.
    #[error(
        "the digest of {tag} could not be read, and pinDigest needs it; retried on the next pass"
    )]
    NoDigest {
        /// The tag.
        tag: Tag,
    },
    /// The environment it takes tags from writes by pull request, and the forge could not
    /// say when they merged: how long a tag ran there is unknown.
    #[error(
        "when {env}'s pull requests merged is unknown, so their soak cannot be counted: {error}"
    )]
    Landing {
        /// The upstream environment.
        env: String,
        /// The forge's failure.
        error: crate::forge::ForgeError,
    },
    /// A soak it waits for cannot end: the bot cannot record what it sees upstream.
    #[error("{0}")]
    Sightings(Warning),
}

impl Problem {
    /// The class, as alerts and metrics label it.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Registry(_) => "registry",
            Self::NoDigest { .. } => "facts",
            Self::Target(_) => "target",
            Self::Repository(e) => e.kind.as_str(),
            Self::History => "history",
            Self::Landing { .. } => "forge",
            Self::Sightings(_) => "sightings",
        }
    }
}

/// The decision for one environment, with what it was made from.
#[derive(Debug, Clone)]
pub struct EnvDecision {
    /// Which environment.
    pub key: EnvKey,
    /// Where it writes.
    pub destination: Destination,
    /// Its image.
    pub image: Repository,
    /// Its target file.
    pub file: PathBuf,
    /// How a bump is written.
    pub write: WriteMode,
    /// When a waiting eligible tag counts as stalled.
    pub stall_after: SignedDuration,
    /// What its target holds now (raw text; `None` when nothing or unreadable).
    pub current: Option<String>,
    /// The decision, or why there is none.
    pub outcome: Result<Decided, Problem>,
    /// With `verify:`, how its value's rollout stands.
    pub rollout: Option<super::verify::RolloutReport>,
}

/// A decision and its evidence.
#[derive(Debug, Clone)]
pub struct Decided {
    /// What to do.
    pub decision: Decision,
    /// The digest of the tag to write, when known (written with `pinDigest`).
    pub digest: Option<Digest>,
    /// Tags that never qualified, and why.
    pub rejected: Vec<(Tag, Rejection)>,
    /// The evidence for the tag to write: its image's provenance labels, and when it
    /// reached the upstream environment (with `from`).
    pub evidence: Evidence,
    /// What people should know about what it runs.
    pub warnings: Vec<Warning>,
}

/// Something true of an environment that people should know, though it does not stop a
/// decision: shown by `plan`, `status` and the board.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Warning {
    /// The tag it runs is not in the registry's list any more.
    #[error(
        "{tag}, which it runs, is not in the registry (deleted, or never pushed): a restarted pod cannot pull it"
    )]
    NotInRegistry {
        /// The tag.
        tag: Tag,
    },
    /// The environment it takes tags from was rolled back from the tag it runs: the
    /// rollback stops there; whether to follow it here is a person's call.
    #[error(
        "{env}, where it comes from, was rolled back from {tag}; `promote --tag` rolls it back here too"
    )]
    RolledBackUpstream {
        /// The tag.
        tag: Tag,
        /// The upstream environment.
        env: String,
    },
    /// The file pins, beside the tag, a digest the tag does not name in the registry: the
    /// pinned digest is what runs (the tag changed by hand without its digest, or
    /// re-pushed since).
    #[error(
        "the file pins {pinned} beside {tag}, and the registry's {tag} is {now}: the pinned digest is what runs (the tag was set without its digest, or re-pushed since); write {now} there, or the tag {pinned} belongs to"
    )]
    PinnedDigestOther {
        /// The tag.
        tag: Tag,
        /// The digest the file pins.
        pinned: Digest,
        /// The registry's digest for the tag.
        now: Digest,
    },
    /// The tag it runs was re-pushed since it was written: what runs and what the tag
    /// names now are different bits.
    #[error(
        "{tag} was re-pushed since it was written here: it ran as {ran}, the registry now has {now} (a restarted pod pulls the new bits; pinDigest writes the digest so that it cannot)"
    )]
    DigestMoved {
        /// The tag.
        tag: Tag,
        /// The digest recorded when it was written.
        ran: Digest,
        /// The registry's digest for it now.
        now: Digest,
    },
    /// The bot's open pull request proposes a tag that is no longer eligible here.
    #[error("{}", outlived(*number, url, tag, why, *closed))]
    PullRequestOutlived {
        /// Its number.
        number: u64,
        /// Where it is.
        url: String,
        /// The tag it proposes.
        tag: String,
        /// Why that tag is no longer eligible.
        why: String,
        /// Whether this pass closed it (else the next pass that writes does).
        closed: bool,
    },
    /// The bot could not record what it saw upstream (the ledger its soaks count from).
    #[error(
        "tagpromoter cannot write {reference} to this repository ({error}): what changes upstream counts as first seen at a later pass, so its soak cannot start until the bot may push {reference}"
    )]
    SightingsUnwritten {
        /// The ledger's ref.
        reference: String,
        /// Why not.
        error: String,
    },
}

/// [`Warning::PullRequestOutlived`]'s words.
fn outlived(number: u64, url: &str, tag: &str, why: &str, closed: bool) -> String {
    match closed {
        true => {
            format!("closed pull request #{number} {url}: {tag} is no longer eligible here ({why})")
        }
        false => format!(
            "pull request #{number} {url} proposes {tag}, which is no longer eligible here ({why}); the next pass closes it"
        ),
    }
}

/// What reviewers of a promotion want to see.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    /// `org.opencontainers.image.{source,revision,created}` labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// The upstream environment, and when the tag reached it.
    pub upstream: Option<(String, Timestamp)>,
}

impl EnvDecision {
    /// The tag to move to, when the decision is to promote.
    pub fn promotes_to(&self) -> Option<&Tag> {
        match &self.outcome {
            Ok(Decided {
                decision: Decision::Promote { to, .. },
                ..
            }) => Some(to),
            _ => None,
        }
    }
}

/// The most tags one environment asks the registry about in one round of
/// [`facts_wanted`]; the engine asks again until no environment wants more.
pub const INSPECT_PER_ROUND: usize = 8;

/// The tags whose facts a decision still needs, and to what depth, that were not asked
/// for yet (`asked`): walking each environment's candidates best first, down to the tag it
/// runs, those that pass every gate that needs no facts (their whole facts when a gate
/// reads them, their digest when only `pinDigest` does); and the tag a decision would write
/// — its digest for the trailer, and its whole facts only when a pull request shows its
/// labels and waits on the stall clock its creation time starts. However many newer tags
/// an environment has, the one that soaked is reached.
pub fn facts_wanted(
    rules: &Rules,
    observed: &Observed,
    now: Timestamp,
    asked: &HashSet<(Repository, Tag, Depth)>,
) -> Vec<(Repository, Tag, Depth)> {
    let no_facts = Default::default();
    // The deepest want of each tag.
    let mut wanted: BTreeMap<(Repository, Tag), Depth> = BTreeMap::new();
    for p in &rules.promotions {
        let Some(Ok(list)) = observed.images.get(&p.image) else {
            continue;
        };
        let tags = &list.tags;
        let facts = observed.facts.get(&p.image).unwrap_or(&no_facts);
        // Wanted to `depth` unless known to it or asked for already.
        let mut want = |tag: &Tag, depth: Depth| {
            let known = facts.get(tag).is_some_and(|f| f.depth >= depth);
            if !known && !asked.contains(&(p.image.clone(), tag.clone(), depth)) {
                let at = wanted
                    .entry((p.image.clone(), tag.clone()))
                    .or_insert(depth);
                *at = (*at).max(depth);
                return true;
            }
            false
        };
        for env in &p.environments {
            let Some(state) = observed.environments.get(&EnvKey::of(p, env)) else {
                continue;
            };
            let current = state.current.as_ref().ok().cloned().flatten();
            let policy = p.tag_policy(env);
            let selection = policy.select(tags, &|t| created_of(facts, t));
            let gates = p.gates(env);
            let upstream = observed.upstream(p, env, now);
            let situation = Situation {
                now,
                current: None,
                hold: None,
                upstream: upstream.as_ref(),
                facts,
            };
            // The running tag, where a digest was recorded and its bits matter: it is
            // pinned here or where it goes next. Is it still what ran? (One request per
            // such environment and pass; others pay nothing.)
            let downstream = p
                .environments
                .iter()
                .any(|e| e.from.as_ref() == Some(&env.name) && e.pin_digest);
            let recorded = state.timeline.running().is_some_and(|r| r.digest.is_some());
            // (A digest the file pins runs whatever the tag names: is it the tag's?)
            if let Some(tag) = current.as_deref().and_then(|c| Tag::new(c).ok())
                && ((recorded && (downstream || env.pin_digest)) || state.pinned.is_some())
                && tags.contains(&tag)
            {
                want(&tag, Depth::Digest);
            }
            let gated = if gates.need_facts() {
                Depth::Whole
            } else {
                Depth::Digest
            };
            let mut asking = 0;
            for c in &selection.candidates {
                match gates.eligibility(&c.tag, &situation) {
                    // The winner (none needed when it is what runs).
                    Ok(_) => {
                        if current.as_deref() != Some(c.tag.as_str()) {
                            let depth = match env.write {
                                WriteMode::PullRequest => Depth::Whole,
                                _ => Depth::Digest,
                            };
                            want(&c.tag, depth);
                        }
                        break;
                    }
                    Err(crate::policy::Block::NotInspected) => {
                        if want(&c.tag, gated) {
                            asking += 1;
                        }
                    }
                    Err(_) => {}
                }
                if asking == INSPECT_PER_ROUND || current.as_deref() == Some(c.tag.as_str()) {
                    break;
                }
            }
        }
    }
    wanted
        .into_iter()
        .map(|((image, tag), depth)| (image, tag, depth))
        .collect()
}

/// Decide every environment of every promotion, in the order of the rules.
pub fn decide(rules: &Rules, observed: &Observed, now: Timestamp) -> Vec<EnvDecision> {
    let no_facts = Default::default();
    let mut out = Vec::with_capacity(rules.promotions.iter().map(|p| p.environments.len()).sum());
    for p in &rules.promotions {
        let facts = observed.facts.get(&p.image).unwrap_or(&no_facts);
        for env in &p.environments {
            let key = EnvKey::of(p, env);
            let destination = env.destination.clone();
            let state = observed.environments.get(&key);
            let current = state.and_then(|s| s.current.as_ref().ok().cloned().flatten());
            let rollout = env.verify.as_ref().and_then(|v| {
                Some(super::verify::RolloutReport {
                    deployment: observed.deployments.get(&key)?.clone(),
                    landed: state
                        .and_then(|s| s.timeline.changes.last())
                        .map(|c| c.since),
                    deploy_timeout: v.deploy_timeout,
                    controller: super::verify::controller_name(&v.controller),
                })
            });
            let outcome = (|| {
                // Its own repository, or its upstream's (what soaked there is unknown).
                let upstream = p.upstream_of(env).map(|up| up.destination.clone());
                for d in std::iter::once(&destination).chain(upstream.as_ref()) {
                    if let Some(e) = observed.unreadable.get(d) {
                        return Err(Problem::Repository(e.clone()));
                    }
                }
                let tags = match observed.images.get(&p.image) {
                    Some(Ok(list)) => &list.tags,
                    Some(Err(e)) => return Err(Problem::Registry(e.clone())),
                    None => return Ok(None),
                };
                let state = match state {
                    Some(s) => s,
                    None => return Ok(None),
                };
                if let Err(e) = &state.current {
                    return Err(Problem::Target(e.clone()));
                }
                if !state.complete {
                    return Err(Problem::History);
                }
                if let Some(from) = &env.from
                    && let Some(error) = observed
                        .environments
                        .get(&EnvKey {
                            promotion: p.name.clone(),
                            environment: from.clone(),
                        })
                        .and_then(|s| s.landing_unknown.clone())
                {
                    return Err(Problem::Landing {
                        env: from.clone(),
                        error,
                    });
                }
                let policy = p.tag_policy(env);
                let created = |t: &str| created_of(facts, t);
                let selection = policy.select(tags, &created);
                let hold = observed.hold(p, env);
                let current_tag = current.as_deref().and_then(|c| Tag::new(c).ok());
                let upstream = observed.upstream(p, env, now);
                let decision = p.gates(env).decide(
                    &policy,
                    &selection,
                    &Situation {
                        now,
                        current: current_tag.as_ref(),
                        hold: hold.as_ref(),
                        upstream: upstream.as_ref(),
                        facts,
                    },
                );
                let evidence = match &decision {
                    Decision::Promote { to, .. } => Evidence {
                        labels: facts.get(to).map(|f| f.labels.clone()).unwrap_or_default(),
                        upstream: env.from.clone().zip(
                            upstream
                                .as_ref()
                                .and_then(|t| t.residencies(to).first().map(|r| r.since)),
                        ),
                    },
                    _ => Evidence::default(),
                };
                let digest = match &decision {
                    Decision::Promote { to, .. } => {
                        let digest = facts.get(to).map(|f| f.digest.clone());
                        if env.pin_digest && digest.is_none() {
                            return Err(Problem::NoDigest { tag: to.clone() });
                        }
                        digest
                    }
                    _ => None,
                };
                let mut warnings = Vec::new();
                if let Some(tag) = &current_tag {
                    if !tags.contains(tag) {
                        warnings.push(Warning::NotInRegistry { tag: tag.clone() });
                    }
                    let rolled_back = upstream
                        .as_ref()
                        .and_then(|t| t.residencies(tag).pop())
                        .is_some_and(|r| r.rolled_back);
                    if let (true, Some(env)) = (rolled_back, &env.from) {
                        warnings.push(Warning::RolledBackUpstream {
                            tag: tag.clone(),
                            env: env.clone(),
                        });
                    }
                    let ran = state.timeline.running().and_then(|r| r.digest);
                    if let (Some(pinned), Some(f)) = (&state.pinned, facts.get(tag))
                        && *pinned != f.digest
                    {
                        warnings.push(Warning::PinnedDigestOther {
                            tag: tag.clone(),
                            pinned: pinned.clone(),
                            now: f.digest.clone(),
                        });
                    } else if let (None, Some(ran), Some(f)) = (&state.pinned, ran, facts.get(tag))
                        && ran != f.digest
                    {
                        warnings.push(Warning::DigestMoved {
                            tag: tag.clone(),
                            ran,
                            now: f.digest.clone(),
                        });
                    }
                }
                Ok(Some(Decided {
                    decision,
                    digest,
                    rejected: selection.rejected,
                    evidence,
                    warnings,
                }))
            })();
            let outcome = match outcome {
                Ok(Some(d)) => Ok(d),
                // Observation always covers every environment; a gap is a bug worth seeing.
                Ok(None) => Err(Problem::Target(GitError::new(
                    crate::gitops::GitErrorKind::Local,
                    "deciding",
                    format!("{key} was not observed"),
                ))),
                Err(p) => Err(p),
            };
            out.push(EnvDecision {
                key,
                destination,
                image: p.image.clone(),
                file: env.target.file().to_path_buf(),
                write: env.write,
                stall_after: env.stall_after,
                current,
                outcome,
                rollout,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{Step, World, at, digest, rules, summary};

    const SEMVER_PROD: &str = "    - name: prod\n      policy: { semver: '^1.0.0' }\n      target: { helm: { file: apps/prod.yaml, tag: image.tag } }\n";
    const NEWEST_DEV: &str = "    - name: dev\n      policy: { newestBuild: {} }\n      target: { helm: { file: apps/dev.yaml, tag: image.tag } }\n";
    const NUMERICAL_DEV: &str = "    - name: dev\n      policy: { numerical: asc }\n      target: { helm: { file: apps/dev.yaml, tag: image.tag } }\n";
    const CHAIN: &str = "    - name: staging\n      policy: { semver: '^1.0.0' }\n      target: { helm: { file: apps/staging.yaml, tag: image.tag } }\n    - name: prod\n      from: staging\n      soak: 24h\n      pinDigest: true\n      policy: { semver: '^1.0.0' }\n      target: { helm: { file: apps/prod.yaml, tag: image.tag, digest: image.digest } }\n";

    fn semver_tags() -> World {
        World::new(rules(SEMVER_PROD), "1.0.0").tags(&[
            ("1.0.0", 0),
            ("1.0.1-hotfix.1", 1),
            ("1.1.0", 2),
            ("7.0.0", 3),
            ("latest", 4),
        ])
    }

    /// The chain with 1.0.0 and 1.1.0 listed, staging's history `steps`.
    fn staging_ran(steps: &[Step]) -> World {
        World::new(rules(CHAIN), "1.0.0")
            .tags(&[("1.0.0", 0), ("1.1.0", 1)])
            .history("staging", "1.0.0", true, steps)
    }

    /// One row per way the promises were broken (issue 15) and per state: what the world
    /// is, and what `decide` must say for one environment at hour 100.
    #[test]
    fn each_history_decides_as_promised() {
        let h = at;
        let rows: Vec<(&str, World, &str, &str)> = vec![
            (
                "a newer tag in range",
                semver_tags(),
                "prod",
                "promote 1.1.0",
            ),
            (
                "a forced hotfix outside the range holds",
                semver_tags().history(
                    "prod",
                    "1.1.0",
                    true,
                    &[Step::Promote {
                        at: h(10),
                        to: "1.0.1-hotfix.1",
                        hold: true,
                    }],
                ),
                "prod",
                "held by alice",
            ),
            (
                "a hand-set tag above the range is not moved back",
                semver_tags().history(
                    "prod",
                    "1.1.0",
                    true,
                    &[Step::Hand {
                        at: h(10),
                        to: "7.0.0",
                    }],
                ),
                "prod",
                "downgrade",
            ),
            (
                "a hand-set value the order cannot place holds",
                semver_tags().history(
                    "prod",
                    "1.1.0",
                    true,
                    &[Step::Hand {
                        at: h(10),
                        to: "latest",
                    }],
                ),
                "prod",
                "held by bob",
            ),
            (
                "a hand rollback below the range's best holds",
                semver_tags().history(
                    "prod",
                    "1.1.0",
                    true,
                    &[Step::Hand {
                        at: h(10),
                        to: "1.0.1-hotfix.1",
                    }],
                ),
                "prod",
                "held by bob",
            ),
            (
                "released, the bot moves on",
                semver_tags().history(
                    "prod",
                    "1.1.0",
                    true,
                    &[
                        Step::Hand {
                            at: h(10),
                            to: "1.0.0",
                        },
                        Step::Release { at: h(11) },
                    ],
                ),
                "prod",
                "promote 1.1.0",
            ),
            (
                "a hold older than the history read cannot be ruled out",
                semver_tags().history("prod", "1.0.0", false, &[]),
                "prod",
                "error history",
            ),
            (
                "a target a person created in the history read needs nothing older",
                semver_tags().history(
                    "prod",
                    "",
                    false,
                    &[Step::Hand {
                        at: h(10),
                        to: "1.0.0",
                    }],
                ),
                "prod",
                "promote 1.1.0",
            ),
            (
                "a file broken and fixed by hand keeps the hold it had",
                semver_tags().history(
                    "prod",
                    "1.1.0",
                    true,
                    &[
                        Step::Hand {
                            at: h(10),
                            to: "1.0.0",
                        },
                        Step::Broken { at: h(11) },
                        Step::Hand {
                            at: h(12),
                            to: "1.0.0",
                        },
                    ],
                ),
                "prod",
                "held by bob",
            ),
            (
                "the bot's own write bounds what must be read",
                semver_tags().history(
                    "prod",
                    "1.0.0",
                    false,
                    &[Step::Bot {
                        at: h(10),
                        to: "1.0.0",
                    }],
                ),
                "prod",
                "promote 1.1.0",
            ),
            (
                "newestBuild: the newest build",
                World::new(rules(NEWEST_DEV), "b1").tags(&[("b1", 1), ("b2", 2), ("b3", 3)]),
                "dev",
                "promote b3",
            ),
            (
                "newestBuild: a hand rollback to an older build holds",
                World::new(rules(NEWEST_DEV), "b1")
                    .tags(&[("b1", 1), ("b2", 2), ("b3", 3)])
                    .history(
                        "dev",
                        "b1",
                        true,
                        &[
                            Step::Bot {
                                at: h(10),
                                to: "b3",
                            },
                            Step::Hand {
                                at: h(11),
                                to: "b2",
                            },
                        ],
                    ),
                "dev",
                "held by bob",
            ),
            (
                "newestBuild: the running build's age unknown moves nothing",
                World::new(rules(NEWEST_DEV), "b1")
                    .tags(&[("b2", 2), ("b3", 3)])
                    .history(
                        "dev",
                        "b1",
                        true,
                        &[Step::Bot {
                            at: h(10),
                            to: "b3",
                        }],
                    )
                    .uninspected("b3"),
                "dev",
                "unknown",
            ),
            (
                "numerical: a tag that is not a number is no candidate",
                World::new(rules(NUMERICAL_DEV), "100").tags(&[
                    ("100", 1),
                    ("101", 2),
                    ("latest", 3),
                ]),
                "dev",
                "promote 101",
            ),
            (
                "the soaked tag behind many newer ones",
                World::new(rules(CHAIN), "1.0.0")
                    .tags(
                        &(0..40)
                            .map(|i| (Box::leak(format!("1.{i}.0").into_boxed_str()) as &str, i))
                            .collect::<Vec<_>>(),
                    )
                    .history(
                        "staging",
                        "1.0.0",
                        true,
                        &[Step::Bot {
                            at: h(10),
                            to: "1.5.0",
                        }],
                    ),
                "prod",
                "promote 1.5.0",
            ),
            (
                "a re-pushed tag does not go on with a digest that never soaked",
                staging_ran(&[Step::Bot {
                    at: h(10),
                    to: "1.1.0",
                }])
                .facts("1.1.0", |f| f.digest = digest("1.1.0", 1)),
                "prod",
                "nothing eligible",
            ),
            (
                "the soaked digest goes on",
                staging_ran(&[Step::Bot {
                    at: h(10),
                    to: "1.1.0",
                }]),
                "prod",
                "promote 1.1.0",
            ),
            (
                "a tag upstream was rolled back from does not go on",
                staging_ran(&[
                    Step::Bot {
                        at: h(10),
                        to: "1.1.0",
                    },
                    Step::Hand {
                        at: h(50),
                        to: "1.0.0",
                    },
                ]),
                "prod",
                "up-to-date",
            ),
            (
                "when upstream's pull requests merged is unknown",
                staging_ran(&[Step::Bot {
                    at: h(10),
                    to: "1.1.0",
                }])
                .merges_unknown("staging"),
                "prod",
                "error forge",
            ),
        ];
        for (case, world, env, expected) in rows {
            let d = world.decision(env, at(100));
            assert_eq!(summary(&d), expected, "{case}: {:?}", d.outcome);
        }
    }

    /// Soak counts by clocks nobody upstream sets (issue 28): a person's change upstream
    /// from when the bot first saw it (its commit may carry any date), one never seen from
    /// now; the bot's own bump on the downstream's branch from its commit.
    #[test]
    fn upstream_changes_soak_from_the_bots_sighting_not_their_commit_date() {
        let h = at;
        let hand = || {
            staging_ran(&[Step::Hand {
                at: h(10),
                to: "1.1.0",
            }])
        };
        let bot = staging_ran(&[Step::Bot {
            at: h(10),
            to: "1.1.0",
        }]);
        let waits = |world: World| match world.decision("prod", h(100)).outcome {
            Ok(d) => match d.decision {
                crate::policy::Decision::UpToDate { waiting, .. }
                | crate::policy::Decision::Blocked { waiting, .. } => waiting
                    .iter()
                    .map(|w| format!("{} {:?}", w.tag, w.block))
                    .collect::<Vec<_>>(),
                other => vec![format!("{other:?}")],
            },
            Err(p) => vec![p.to_string()],
        };
        let soaking_until = |hours| {
            vec![format!(
                "1.1.0 {:?}",
                crate::policy::Block::Soaking { until: h(hours) }
            )]
        };
        assert_eq!(
            waits(hand().sighted("staging", 1, h(90))),
            soaking_until(114)
        );
        assert_eq!(waits(hand().unsighted("staging")), soaking_until(124));
        assert_eq!(summary(&hand().decision("prod", h(100))), "promote 1.1.0");
        assert_eq!(
            summary(&bot.unsighted("staging").decision("prod", h(100))),
            "promote 1.1.0"
        );
    }

    #[test]
    fn warnings_say_what_runs_is_not_what_was_written() {
        let world = World::new(rules(CHAIN), "1.0.0")
            .tags(&[("1.1.0", 1)])
            .history(
                "staging",
                "1.0.0",
                true,
                &[Step::Bot {
                    at: at(10),
                    to: "1.1.0",
                }],
            )
            .facts("1.1.0", |f| f.digest = digest("1.1.0", 1));
        let warnings = |env| match world.decision(env, at(100)).outcome {
            Ok(d) => d
                .warnings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            Err(p) => panic!("{p}"),
        };
        assert_eq!(
            warnings("staging"),
            [format!(
                "1.1.0 was re-pushed since it was written here: it ran as {}, the registry now has {} (a restarted pod pulls the new bits; pinDigest writes the digest so that it cannot)",
                digest("1.1.0", 0),
                digest("1.1.0", 1)
            )]
        );
        assert_eq!(
            warnings("prod"),
            [
                "1.0.0, which it runs, is not in the registry (deleted, or never pushed): a restarted pod cannot pull it"
            ]
        );
    }
}

#[cfg(test)]
mod verify_tests {
    use super::super::fixtures::{Step, World, at, rules, summary};
    use super::super::verify::{Deployment, RolledOut};

    const VERIFIED: &str = "    - name: staging\n      policy: { semver: '^1.0.0' }\n      target: { helm: { file: apps/staging.yaml, tag: image.tag } }\n      verify: { argocd: { application: app-staging } }\n    - name: prod\n      from: staging\n      soak: 1h\n      policy: { semver: '^1.0.0' }\n      target: { helm: { file: apps/prod.yaml, tag: image.tag } }\n";

    /// A person rolled staging back from 1.2.0, and Argo CD has not synced the rollback
    /// yet: 1.2.0 may still run there, but it was rolled back from, so it never flows to
    /// prod; a bump not deployed yet does not soak either.
    #[test]
    fn a_rollback_not_deployed_yet_still_stops_the_tag_it_rolled_back_from() {
        let rollback = Step::Hand {
            at: at(50),
            to: "1.1.0",
        };
        // (A pass saw 1.1.0 run healthy from hour 1, before 1.2.0.)
        let world = |deployment: Deployment| {
            staging(2, std::slice::from_ref(&rollback))
                .deployment("staging", deployment)
                .rollout_seen("staging", 1, at(1), true)
        };
        let pending = || Deployment::Deploying {
            message: "sync OutOfSync".into(),
        };
        for (case, deployment) in [
            ("deploying", pending()),
            (
                "unknown",
                Deployment::Unknown {
                    message: "forbidden".into(),
                },
            ),
            ("deployed", Deployment::Deployed { since: at(51) }),
        ] {
            let d = world(deployment).decision("prod", at(100));
            assert_eq!(summary(&d), "promote 1.1.0", "{case}: {:?}", d.outcome);
        }
        // Its bump to 1.2.0 not deployed yet: 1.1.0 still runs there (a pass saw it running
        // healthy), 1.2.0 has not soaked.
        let bumped = staging(2, &[])
            .deployment("staging", pending())
            .rollout_seen("staging", 1, at(1), true);
        let d = bumped.decision("prod", at(100));
        assert_eq!(summary(&d), "promote 1.1.0", "{:?}", d.outcome);
    }

    /// Staging bumped by the bot to 1.1.0 at hour 1 and to 1.2.0 at hour `second`, then
    /// `more`.
    fn staging(second: i64, more: &[Step]) -> World {
        let mut steps = vec![
            Step::Bot {
                at: at(1),
                to: "1.1.0",
            },
            Step::Bot {
                at: at(second),
                to: "1.2.0",
            },
        ];
        steps.extend_from_slice(more);
        World::new(rules(VERIFIED), "1.0.0")
            .tags(&[("1.0.0", 0), ("1.1.0", 1), ("1.2.0", 2)])
            .history("staging", "1.0.0", true, &steps)
    }

    /// Staging's history: 1.1.0 committed at hour 1, 1.2.0 at hour 50 (deployed then, or
    /// not yet). Prod, half an hour later, takes 1.1.0 only if it ran an hour in staging
    /// healthy: as the last pass that saw it there saw it (the ledger), else from when Argo
    /// CD's history says it was deployed; a value never seen deployed did not run, and what
    /// ran before it ran on.
    #[test]
    fn an_earlier_value_soaks_from_its_rollout_in_the_controllers_history() {
        let world =
            |now: Deployment, rolled: Option<RolledOut>, seen: Option<(jiff::Timestamp, bool)>| {
                let world = staging(50, &[]).deployment("staging", now);
                let world = match rolled {
                    Some(rolled) => world.rolled_out("staging", 1, rolled),
                    None => world,
                };
                match seen {
                    Some((since, healthy)) => world.rollout_seen("staging", 1, since, healthy),
                    None => world,
                }
            };
        let deployed = || Deployment::Deployed { since: at(50) };
        let pending = || Deployment::Deploying {
            message: "sync OutOfSync".into(),
        };
        let late = at(49) + jiff::SignedDuration::from_mins(30);
        let rows = [
            (
                "the history does not reach it, and no pass saw it run: no evidence",
                deployed(),
                None,
                None,
                "up-to-date",
            ),
            (
                "the history does not reach it; a pass saw it healthy since hour 2",
                deployed(),
                None,
                Some((at(2), true)),
                "promote 1.1.0",
            ),
            (
                "a pass saw it healthy only since half an hour before 1.2.0",
                deployed(),
                None,
                Some((late, true)),
                "up-to-date",
            ),
            (
                "the last pass that saw it saw it degraded",
                deployed(),
                Some(RolledOut::At(at(10))),
                Some((at(40), false)),
                "up-to-date",
            ),
            (
                "deployed at hour 10",
                deployed(),
                Some(RolledOut::At(at(10))),
                None,
                "promote 1.1.0",
            ),
            (
                "deployed half an hour before 1.2.0",
                deployed(),
                Some(RolledOut::At(late)),
                None,
                "up-to-date",
            ),
            (
                "never deployed",
                deployed(),
                Some(RolledOut::Never),
                None,
                "up-to-date",
            ),
            (
                "never deployed, 1.2.0 not yet either",
                pending(),
                Some(RolledOut::Never),
                None,
                "up-to-date",
            ),
            (
                "deployed late, 1.2.0 not yet: 1.1.0 still runs",
                pending(),
                Some(RolledOut::At(late)),
                None,
                "promote 1.1.0",
            ),
        ];
        for (case, now, rolled, seen, expected) in rows {
            let d = world(now, rolled, seen)
                .decision("prod", at(50) + jiff::SignedDuration::from_mins(30));
            assert_eq!(summary(&d), expected, "{case}: {:?}", d.outcome);
        }
    }
}

#[cfg(test)]
mod facts_tests {
    use std::collections::HashSet;

    use super::super::fixtures::{World, at, rules, summary};
    use super::*;
    use crate::image::ImageFacts;

    const DEV: &str = "    - name: dev\n      policy: { semver: '^1.0.0' }\n      target: { helm: { file: apps/dev.yaml, tag: image.tag } }\n";
    /// The tags wanted, each with its depth.
    type Wanted = Vec<(&'static str, Depth)>;

    const AGED_DEV: &str = "    - name: dev\n      minAge: 1h\n      policy: { semver: '^1.0.0' }\n      target: { helm: { file: apps/dev.yaml, tag: image.tag } }\n";

    /// What the decisions ask the registry about, and how deep: the tag to write needs
    /// only its digest; a gate that reads the config needs the whole facts, even of a tag
    /// whose digest alone is known.
    #[test]
    fn each_decision_asks_for_facts_as_deep_as_it_reads_them() {
        let digest_only = |f: &mut ImageFacts| *f = ImageFacts::digest_only(f.digest.clone());
        let rows: Vec<(&str, World, Wanted)> = vec![
            (
                "the tag to write, unknown",
                World::new(rules(DEV), "1.0.0")
                    .tags(&[("1.0.0", 0), ("1.1.0", 1)])
                    .uninspected("1.1.0"),
                vec![("1.1.0", Depth::Digest)],
            ),
            (
                "the tag to write, its digest known",
                World::new(rules(DEV), "1.0.0")
                    .tags(&[("1.0.0", 0), ("1.1.0", 1)])
                    .facts("1.1.0", digest_only),
                vec![],
            ),
            (
                "a minAge candidate, unknown",
                World::new(rules(AGED_DEV), "1.0.0")
                    .tags(&[("1.0.0", 0), ("1.1.0", 1)])
                    .uninspected("1.1.0"),
                vec![("1.1.0", Depth::Whole)],
            ),
            (
                "a minAge candidate whose digest alone is known",
                World::new(rules(AGED_DEV), "1.0.0")
                    .tags(&[("1.0.0", 0), ("1.1.0", 1)])
                    .facts("1.1.0", digest_only),
                vec![("1.1.0", Depth::Whole)],
            ),
            (
                "a minAge candidate, whole",
                World::new(rules(AGED_DEV), "1.0.0").tags(&[("1.0.0", 0), ("1.1.0", 1)]),
                vec![],
            ),
        ];
        for (case, world, expected) in rows {
            let wanted: Vec<(String, Depth)> =
                facts_wanted(&world.rules, &world.observed, at(100), &HashSet::new())
                    .into_iter()
                    .map(|(_, tag, depth)| (tag.to_string(), depth))
                    .collect();
            let expected: Vec<(String, Depth)> =
                expected.into_iter().map(|(t, d)| (t.into(), d)).collect();
            assert_eq!(wanted, expected, "{case}");
        }
    }

    /// A digest alone does not pass `minAge`: the tag is not inspected yet (and is asked
    /// for whole), not refused for want of a creation time.
    #[test]
    fn a_digest_alone_leaves_a_min_age_candidate_uninspected() {
        let world = World::new(rules(AGED_DEV), "1.0.0")
            .tags(&[("1.0.0", 0), ("1.1.0", 1)])
            .facts("1.1.0", |f| *f = ImageFacts::digest_only(f.digest.clone()));
        let decision = world.decision("dev", at(100));
        assert_eq!(summary(&decision), "up-to-date");
        let waiting = decision
            .outcome
            .as_ref()
            .unwrap()
            .decision
            .waiting()
            .to_vec();
        assert!(
            matches!(
                waiting.as_slice(),
                [w] if w.tag.as_str() == "1.1.0" && w.block == crate::policy::Block::NotInspected
            ),
            "{waiting:?}"
        );
        let whole = World::new(rules(AGED_DEV), "1.0.0").tags(&[("1.0.0", 0), ("1.1.0", 1)]);
        assert_eq!(summary(&whole.decision("dev", at(100))), "promote 1.1.0");
    }
}
