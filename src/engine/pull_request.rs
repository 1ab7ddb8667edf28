//! Writing by pull request (`write: pull-request`): the bump is committed on the branch
//! `tagpromoter/<promotion>/<environment>` from the base branch's tip and pushed with a
//! lease (our own branch only), and one pull request per environment is opened or updated.
//! A person's commit on that branch is never overwritten; a pull request a person closed
//! unmerged is not proposed again for the same tag; a merged one shows up as the base
//! branch's new value on the next pass.

use gix::ObjectId;
use jiff::Timestamp;

use super::apply::Applied;
use super::bump;
use super::decide::EnvDecision;
use crate::forge::{Forge, PrState};
use crate::gitops::message::Record;
use crate::gitops::{Outcome, Pushed, Repo};
use crate::policy::Decision;
use crate::rules::Rules;

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
            PrState::Closed => Applied::Declined {
                number: pr.number,
                url: pr.url,
            },
            PrState::Merged => Applied::Nothing,
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
        && pr.state == PrState::Closed
        && pr.body.contains(&marker)
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
        Some(pr) if pr.state == PrState::Open => forge.update(pr.number, &title, &text).await,
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
