//! The bump: one home for what a promotion writes — its record (the commit message and the
//! trailers that are the audit log), its file edits (compare-and-swap on the value the
//! environment held, the tag's digest wherever a target pins one), and what it does to the
//! files on a tip without committing ([`preview`]: the diff `plan` shows, the refusal
//! `once` would meet, through the same `Repo::prepare` that `once` commits with). The
//! bot's bumps, a person's `promote` and `release`, and pull requests are all built here.
//!
//! It decides nothing (that is `decide`'s and `manual`'s) and writes nothing (`gitops`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::apply::Applied;
use super::decide::EnvDecision;
use crate::gitops::message::{Actor, HoldChange, Record};
use crate::gitops::{Bump, FileEdit, Outcome, Repo};
use crate::image::{Digest, Tag};
use crate::manifest::Wanted;
use crate::policy::Decision;
use crate::rules::{Destination, Environment, Promotion, Rules, Settings, WriteMode};

/// The record of `actor` writing `to` into `env` of `p` (under `settings`): the one place
/// a commit's trailers are made, with the record's identity (repository and branch).
/// Nothing else is said yet (no `from`, digest, reason, hold); callers add what they know.
pub fn record(
    settings: &Settings,
    p: &Promotion,
    env: &Environment,
    to: Option<Tag>,
    actor: Actor,
) -> Record {
    Record {
        promotion: p.name.clone(),
        environment: env.name.clone(),
        image: p.image.clone(),
        from: None,
        to,
        digest: None,
        actor,
        reason: None,
        forced: false,
        hold: None,
        target: Some(p.target_id(env)),
        identity: settings.identity(&env.destination),
    }
}

/// The bump of one decision to promote, as the bot's own (`Actor::Bot`).
pub fn of_decision(rules: &Rules, d: &EnvDecision) -> Option<Bump> {
    let Ok(decided) = &d.outcome else {
        return None;
    };
    let Decision::Promote { from, to, .. } = &decided.decision else {
        return None;
    };
    let (p, env) = rules.environment(&d.key.promotion, &d.key.environment)?;
    let record = Record {
        from: from.clone(),
        digest: decided.digest.clone(),
        ..record(&rules.settings, p, env, Some(to.clone()), Actor::Bot)
    };
    for_record(rules, d, record, d.current.clone())
}

/// The bump that writes what `record` says into `d`'s targets over `expected` (what they
/// hold): what the bot commits for it.
pub fn for_record(
    rules: &Rules,
    d: &EnvDecision,
    record: Record,
    expected: Option<String>,
) -> Option<Bump> {
    let (p, env) = rules.environment(&d.key.promotion, &d.key.environment)?;
    Some(with_record(p, env, record, expected))
}

/// The bump that writes `record` into `env`'s targets over `expected`; a record that
/// names no tag (a release) changes no file.
pub fn with_record(
    p: &Promotion,
    env: &Environment,
    record: Record,
    expected: Option<String>,
) -> Bump {
    let edits = match (&record.to, &record.hold) {
        (_, Some(HoldChange::Released)) | (None, _) => Vec::new(),
        (Some(to), _) => edits(p, env, expected, to, record.digest.as_ref()),
    };
    Bump { record, edits }
}

/// One edit per target of `env`: `tag` over `expected`, and `digest` (the tag's, when
/// known) wherever a target pins one or `pinDigest` asks.
pub fn edits(
    p: &Promotion,
    env: &Environment,
    expected: Option<String>,
    tag: &Tag,
    digest: Option<&Digest>,
) -> Vec<FileEdit> {
    env.targets()
        .map(|t| FileEdit {
            file: t.file().to_path_buf(),
            target: p.manifest_target_of(env, t),
            expected: expected.clone(),
            wanted: Wanted {
                repository: p.written_repository_of(t),
                tag: tag.clone(),
                digest: digest.cloned(),
                pin: env.pin_digest,
            },
        })
        .collect()
}

/// A file the bumps of a preview would change: as the tip has it and as they leave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    /// Where it is written.
    pub destination: Destination,
    /// The file, relative to the repository root.
    pub path: PathBuf,
    /// Its text at the tip.
    pub before: String,
    /// Its text after every bump of the pass that changes it.
    pub after: String,
}

/// What `once` would do with the decisions to promote by push, without committing: each
/// bump prepared on its destination's tip (`Repo::prepare`: the same edits and checks a
/// commit gets). For each decision, what writing would meet (`Failed` where `once` would
/// fail, `Nothing` where it would land), and the files the bumps change.
pub async fn preview(
    rules: &Rules,
    repos: &BTreeMap<Destination, Repo>,
    decisions: &[EnvDecision],
    tips: &BTreeMap<Destination, gix::ObjectId>,
) -> (Vec<Applied>, Vec<PlannedFile>) {
    let mut applied = vec![Applied::Nothing; decisions.len()];
    let mut files: Vec<PlannedFile> = Vec::new();
    let mut by_destination: BTreeMap<&Destination, Vec<(usize, Bump)>> = BTreeMap::new();
    for (i, d) in decisions.iter().enumerate() {
        if d.write != WriteMode::Push {
            continue;
        }
        if let Some(b) = of_decision(rules, d) {
            by_destination
                .entry(&d.destination)
                .or_default()
                .push((i, b));
        }
    }
    for (destination, bumps) in by_destination {
        let (Some(repo), Some(tip)) = (repos.get(destination), tips.get(destination)) else {
            continue;
        };
        let (indexes, bumps): (Vec<usize>, Vec<Bump>) = bumps.into_iter().unzip();
        let prepared = match repo.prepare(*tip, &bumps).await {
            Ok(p) => p,
            Err(e) => {
                for i in indexes {
                    applied[i] = Applied::Failed(e.clone().into());
                }
                continue;
            }
        };
        for (i, step) in indexes.into_iter().zip(prepared.steps) {
            match step {
                Ok(changes) => {
                    for c in changes {
                        match files
                            .iter_mut()
                            .find(|f| &f.destination == destination && f.path == c.path)
                        {
                            Some(f) => f.after = c.after,
                            None => files.push(PlannedFile {
                                destination: destination.clone(),
                                path: c.path,
                                before: c.before,
                                after: c.after,
                            }),
                        }
                    }
                }
                Err(Outcome::Failed(e)) => applied[i] = Applied::Failed(e.into()),
                Err(Outcome::AlreadyInPlace) => applied[i] = Applied::AlreadyInPlace,
                Err(Outcome::Superseded { found }) => applied[i] = Applied::Superseded { found },
                Err(Outcome::Landed(_)) => {}
            }
        }
    }
    files.sort_by(|a, b| (&a.destination, &a.path).cmp(&(&b.destination, &b.path)));
    (applied, files)
}
