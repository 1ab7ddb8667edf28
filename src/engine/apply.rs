//! Apply: turn the decisions to promote into bumps (compare-and-swap on the value each
//! environment held when it was decided), commit them, one push for the branch, and say
//! what became of each.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;

use super::decide::EnvDecision;
use crate::forge::Forge;
use crate::gitops::{GitError, Outcome, Repo};
use crate::rules::{Destination, Rules, WriteMode};

/// Why writing a bump failed: the Git remote, or the forge that opens pull requests. Each
/// keeps its own hint (a refused forge token is not a git.auth problem).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// Committing or pushing.
    #[error("{0}")]
    Git(#[from] GitError),
    /// The forge's API.
    #[error("{0}")]
    Forge(#[from] crate::forge::ForgeError),
}

impl WriteError {
    /// The class, as alerts and metrics label it (`auth`, `rejected`, `network`, …).
    pub fn class(&self) -> &'static str {
        match self {
            Self::Git(e) => e.kind.as_str(),
            Self::Forge(e) => e.kind.as_str(),
        }
    }
}

/// What became of one environment's decision when the pass wrote.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// Nothing to write.
    Nothing,
    /// Committed and pushed.
    Landed {
        /// The commit on the branch.
        commit: String,
        /// Its subject.
        subject: String,
    },
    /// The file already held the value.
    AlreadyInPlace,
    /// A person changed the file first; decided afresh next pass.
    Superseded {
        /// What the file held instead.
        found: Option<String>,
    },
    /// The write failed.
    Failed(WriteError),
    /// Not written by this pass, and why.
    Skipped {
        /// Why.
        why: String,
    },
    /// Proposed in an open pull request (opened, updated, or already there).
    Proposed {
        /// Its number.
        number: u64,
        /// Where people review it.
        url: String,
    },
    /// A person closed the pull request proposing this tag unmerged; not proposed again
    /// until a newer tag is eligible.
    Declined {
        /// Its number.
        number: u64,
        /// Where it is.
        url: String,
    },
}

/// Write every decision to promote: one commit each, one push per destination (the
/// destinations concurrently); environments that write by pull request get theirs on
/// their own branch (their repository's forge opens them). A failure of a destination's
/// whole write (its remote unreachable) fails every bump going there, and only those.
/// Returns what became of each decision, and the pushes made.
pub async fn apply(
    rules: &Rules,
    repos: &BTreeMap<Destination, Repo>,
    forges: &BTreeMap<String, Arc<dyn Forge>>,
    decisions: &[EnvDecision],
    tips: &BTreeMap<Destination, gix::ObjectId>,
    now: Timestamp,
) -> (Vec<Applied>, usize) {
    let mut by_destination: BTreeMap<&Destination, Vec<usize>> = BTreeMap::new();
    for (i, d) in decisions.iter().enumerate() {
        if d.promotes_to().is_some() {
            by_destination.entry(&d.destination).or_default().push(i);
        }
    }
    let writes = by_destination
        .into_iter()
        .map(|(destination, indexes)| async move {
            let applied = match (repos.get(destination), tips.get(destination)) {
                (Some(repo), Some(tip)) => {
                    let forge = forges.get(&destination.repository).map(|f| f.as_ref());
                    let chosen: Vec<&EnvDecision> =
                        indexes.iter().map(|&i| &decisions[i]).collect();
                    apply_to(rules, repo, forge, &chosen, *tip, now).await
                }
                // Decided only where its repository was read; should that ever not
                // hold, the environments say so rather than stay quiet.
                _ => {
                    let why = format!("{destination} was not read in this pass; retried next pass");
                    (vec![Applied::Skipped { why }; indexes.len()], 0)
                }
            };
            (indexes, applied)
        });
    let mut applied: Vec<Applied> = vec![Applied::Nothing; decisions.len()];
    let mut pushes = 0;
    for (indexes, (results, pushed)) in futures_util::future::join_all(writes).await {
        pushes += pushed;
        for (i, a) in indexes.into_iter().zip(results) {
            applied[i] = a;
        }
    }
    (applied, pushes)
}

/// [`apply`] for the decisions writing to one destination (`repo`, read at `tip`).
async fn apply_to(
    rules: &Rules,
    repo: &Repo,
    forge: Option<&dyn Forge>,
    decisions: &[&EnvDecision],
    tip: gix::ObjectId,
    now: Timestamp,
) -> (Vec<Applied>, usize) {
    let mut applied: Vec<Applied> = vec![Applied::Nothing; decisions.len()];
    let mut bumps = Vec::new();
    let mut index = Vec::new();
    for (i, d) in decisions.iter().enumerate() {
        if d.write == WriteMode::PullRequest {
            applied[i] = match forge {
                Some(forge) => super::pull_request::propose(rules, repo, forge, d, tip, now).await,
                None => Applied::Skipped {
                    why: format!(
                        "write: pull-request needs a forge for repository {:?} in the Settings",
                        d.destination.repository
                    ),
                },
            };
            continue;
        }
        if let Some(b) = super::bump::of_decision(rules, d) {
            bumps.push(b);
            index.push(i);
        }
    }
    if bumps.is_empty() {
        return (applied, 0);
    }
    match repo.apply(&bumps, now).await {
        Ok(report) => {
            for (k, (_, outcome)) in report.outcomes.into_iter().enumerate() {
                applied[index[k]] = match outcome {
                    Outcome::Landed(id) => Applied::Landed {
                        commit: id.to_string(),
                        subject: bumps[k].record.subject(),
                    },
                    Outcome::AlreadyInPlace => Applied::AlreadyInPlace,
                    Outcome::Superseded { found } => Applied::Superseded { found },
                    Outcome::Failed(e) => Applied::Failed(e.into()),
                };
            }
            (applied, report.pushes)
        }
        Err(e) => {
            tracing::error!(repository = %decisions[0].destination, error = %e, "writing the bumps failed");
            for i in index {
                applied[i] = Applied::Failed(e.clone().into());
            }
            (applied, 0)
        }
    }
}
