//! Writing by pull request (`write: pull-request`): the bump is committed on the branch
//! `tagpromoter/<promotion>/<environment>` from the base branch's tip and pushed with a
//! lease (our own branch only), and one pull request per environment is opened or updated.
//! A person's commit on that branch is never overwritten; a pull request a person closed
//! unmerged is not proposed again for the same tag; a merged one shows up as the base
//! branch's new value on the next pass. An open pull request whose tag is no longer
//! eligible (rolled back upstream, a hold, a policy or gate change) is closed, its text
//! saying why, and the environment's warnings name it; it does not count as declined.

use gix::ObjectId;
use jiff::Timestamp;

use super::apply::Applied;
use super::bump;
use super::decide::{Decided, EnvDecision, Warning};
use crate::forge::{Forge, PrState, PullRequest};
use crate::gitops::message::Record;
use crate::gitops::{Outcome, Pushed, Repo};
use crate::policy::Decision;
use crate::rules::Rules;

/// The trailer of a pull request tagpromoter withdrew: closed by the bot because its tag
/// stopped being eligible, not declined by a person (the tag may be proposed again).
const WITHDRAWN: &str = "Tagpromoter-Withdrawn: ";

/// Whether a person closed `pr`, proposing the tag of `marker`, unmerged.
fn declined(pr: &PullRequest, marker: &str) -> bool {
    pr.state == PrState::Closed && pr.body.contains(marker) && !pr.body.contains(WITHDRAWN)
}

/// The branch an environment's pull requests come from.
pub fn branch_of(d: &EnvDecision) -> String {
    format!("tagpromoter/{}/{}", d.key.promotion, d.key.environment)
}

/// The pull request's text: what moves, the evidence, and the trailers.
fn body(record: &Record, d: &EnvDecision) -> String {
    let mut b = format!(
        "tagpromoter proposes **{}** for `{}` in `{}`.\n\n| | |\n|---|---|\n| image | `{}` |\n| from | `{}` |\n| to | `{}` |\n",
        record.to_text(),
        record.environment,
        record.promotion,
        record.image,
        record.from.as_ref().map_or("(none)", |t| t.as_str()),
        record.to_text(),
    );
    if let Some(digest) = &record.digest {
        b.push_str(&format!("| digest | `{digest}` |\n"));
    }
    if let Ok(decided) = &d.outcome {
        for (label, value) in &decided.evidence.labels {
            b.push_str(&format!("| {label} | `{value}` |\n"));
        }
        if let Some((env, since)) = &decided.evidence.upstream {
            b.push_str(&format!("| in {env} since | {since} |\n"));
        }
        if let Decision::Promote {
            eligible_since: Some(since),
            ..
        } = &decided.decision
        {
            b.push_str(&format!(
                "| eligible since | {since} (created, soaked upstream, out of any freeze) |\n"
            ));
        }
    }
    b.push_str("\nMerging it puts the tag in place; closing it unmerged keeps this tag from being proposed again (a newer one will be).\n\n```\n");
    b.push_str(&record.trailers());
    b.push_str("```\n");
    b
}

/// What the forge says of `d`'s pull request, without changing anything (for `plan` and
/// `status`): in review, declined, or nothing yet.
pub async fn look(forge: &dyn Forge, d: &EnvDecision) -> Applied {
    let Some(to) = d.promotes_to() else {
        return Applied::Nothing;
    };
    let marker = format!("Tagpromoter-To: {to}\n");
    match forge.find(&branch_of(d)).await {
        Ok(Some(pr)) if pr.body.contains(&marker) => match pr.state {
            PrState::Open => Applied::Proposed {
                number: pr.number,
                url: pr.url,
            },
            PrState::Closed if declined(&pr, &marker) => Applied::Declined {
                number: pr.number,
                url: pr.url,
            },
            PrState::Closed | PrState::Merged => Applied::Nothing,
        },
        Ok(_) => Applied::Nothing,
        Err(e) => Applied::Failed(e.into()),
    }
}

/// Propose `d`'s bump on its branch and pull request. `tip` is the base branch's tip.
pub async fn propose(
    rules: &Rules,
    repo: &Repo,
    forge: &dyn Forge,
    d: &EnvDecision,
    tip: ObjectId,
    now: Timestamp,
) -> Applied {
    let Some(bump) = bump::of_decision(rules, d) else {
        return Applied::Nothing;
    };
    let record = bump.record.clone();
    let branch = branch_of(d);
    let title = record.subject();
    let text = body(&record, d);
    let marker = format!("Tagpromoter-To: {}\n", record.to_text());
    let existing = match forge.find(&branch).await {
        Ok(pr) => pr,
        Err(e) => return Applied::Failed(e.into()),
    };
    if let Some(pr) = &existing
        && declined(pr, &marker)
    {
        return Applied::Declined {
            number: pr.number,
            url: pr.url.clone(),
        };
    }
    let remote = match repo.remote_head(&branch).await {
        Ok(r) => r,
        Err(e) => return Applied::Failed(e.into()),
    };
    if remote.is_some() {
        let ahead = match repo.commits_ahead(&branch).await {
            Ok(a) => a,
            Err(e) => return Applied::Failed(e.into()),
        };
        // Ours are the commits tagpromoter would make for their records, exactly; a commit
        // that only carries our trailers is a person's.
        let mut someone_else = false;
        for (id, message) in &ahead {
            let mine = Record::parse(message)
                .filter(|r| r.promotion == record.promotion && r.environment == record.environment)
                .and_then(|r| {
                    let expected = r.from.as_ref().map(ToString::to_string);
                    bump::for_record(rules, d, r, expected)
                });
            let made = match mine {
                Some(bump) => repo.made_for(*id, &bump).await,
                None => Ok(false),
            };
            match made {
                Ok(true) => {}
                Ok(false) => someone_else = true,
                Err(e) => return Applied::Failed(e.into()),
            }
        }
        if someone_else {
            return Applied::Skipped {
                why: format!(
                    "someone else committed to {branch}; tagpromoter leaves the branch to them (delete it to let tagpromoter propose again)"
                ),
            };
        }
        let proposed = ahead
            .first()
            .and_then(|(_, m)| Record::parse(m))
            .is_some_and(|r| r.to == record.to);
        if let Some(pr) = &existing
            && pr.state == PrState::Open
            && proposed
        {
            return Applied::Proposed {
                number: pr.number,
                url: pr.url.clone(),
            };
        }
    }
    let chain = match repo.commit(tip, std::slice::from_ref(&bump), now).await {
        Ok(c) => c,
        Err(e) => return Applied::Failed(e.into()),
    };
    let head = match (chain.commits.first(), chain.skipped.first()) {
        (Some((_, id)), _) => *id,
        (None, Some((_, Outcome::Failed(e)))) => return Applied::Failed(e.clone().into()),
        (None, Some((_, Outcome::Superseded { found }))) => {
            return Applied::Superseded {
                found: found.clone(),
            };
        }
        _ => return Applied::AlreadyInPlace,
    };
    match repo.force_push(head, &branch, remote).await {
        Ok(Pushed::Done | Pushed::AlreadyThere) => {}
        Ok(Pushed::Behind) => {
            return Applied::Skipped {
                why: format!("{branch} moved while tagpromoter pushed; tried again next pass"),
            };
        }
        Ok(Pushed::Rejected(e)) | Err(e) => return Applied::Failed(e.into()),
    }
    let pr = match &existing {
        Some(pr) if pr.state == PrState::Open => {
            forge.update(pr.number, &title, &text, false).await
        }
        _ => forge.open(&branch, repo.branch(), &title, &text).await,
    };
    match pr {
        Ok(pr) => Applied::Proposed {
            number: pr.number,
            url: pr.url,
        },
        Err(e) => Applied::Failed(e.into()),
    }
}

/// Why `decided` no longer proposes `tag`, in the words `plan` uses for it.
fn why_not(decided: &Decided, tag: &str) -> String {
    if let Some(w) = decided
        .decision
        .waiting()
        .iter()
        .find(|w| w.tag.as_str() == tag)
    {
        return w.block.to_string();
    }
    if let Some((_, r)) = decided.rejected.iter().find(|(t, _)| t.as_str() == tag) {
        return r.to_string();
    }
    match &decided.decision {
        Decision::Blocked { reason, .. } => reason.to_string(),
        Decision::UpToDate { current, .. } => format!("{current} is what it should run"),
        Decision::Promote { to, .. } => format!("{to} is the tag to write instead"),
    }
}

/// The open pull request of `d`'s branch when it proposes a tag `d` no longer would write
/// (a decision that promotes updates its pull request instead): closed, its text saying
/// why, when `close` (a pass that writes); else only said. The warning names it either
/// way. A failing decision says nothing about eligibility: its pull request is left open.
pub async fn outlived(forge: &dyn Forge, d: &mut EnvDecision, close: bool) {
    let Ok(decided) = &d.outcome else { return };
    if d.promotes_to().is_some() {
        return;
    }
    let pr = match forge.find(&branch_of(d)).await {
        Ok(Some(pr)) if pr.state == PrState::Open => pr,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot tell whether an open pull request outlived its tag");
            return;
        }
    };
    // Ours say what they propose (a fork's, or a person's, is not ours to close).
    let Some(tag) = pr
        .body
        .lines()
        .find_map(|l| l.strip_prefix("Tagpromoter-To: "))
        .map(str::to_string)
    else {
        return;
    };
    let why = why_not(decided, &tag);
    let mut closed = false;
    if close {
        let title = format!("[withdrawn] {}", pr.title);
        let body = format!(
            "**tagpromoter withdrew this pull request**: {tag} is no longer eligible for `{}`: {why}. Do not merge it; tagpromoter proposes the next eligible tag by itself.\n\n{WITHDRAWN}{why}\n\n---\n\n{}",
            d.key, pr.body
        );
        match forge.update(pr.number, &title, &body, true).await {
            Ok(_) => closed = true,
            Err(e) => {
                tracing::warn!(number = pr.number, error = %e, "cannot close the pull request whose tag is no longer eligible")
            }
        }
    }
    if let Ok(decided) = &mut d.outcome {
        decided.warnings.push(Warning::PullRequestOutlived {
            number: pr.number,
            url: pr.url,
            tag,
            why,
            closed,
        });
    }
}
