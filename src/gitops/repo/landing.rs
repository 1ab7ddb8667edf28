//! Landing a set of bumps: commit them on the fetched tip, push once, and when the branch
//! moved, commit again on the new tip; when the remote refuses, narrow the refusal down to
//! the commits it refused so that the others land; then check that the remote holds what
//! is reported landed.

use backon::BackoffBuilder;
use gix::ObjectId;
use jiff::Timestamp;

use std::time::Duration;

use super::chain::Bump;
use super::mirror::lock;
use super::push::Pushed;
use super::{Repo, TIP_REF};
use crate::gitops::error::{GitError, GitErrorKind};
use crate::gitops::message::Record;

/// What became of one bump.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Committed and pushed: the commit on the branch.
    Landed(ObjectId),
    /// The file already held the value (or another promoter pushed the same commit).
    AlreadyInPlace,
    /// The file no longer held the expected value: a person changed it; dropped, and
    /// decided afresh on the next pass.
    Superseded {
        /// What the file held instead.
        found: Option<String>,
    },
    /// It could not be made or the remote refused it.
    Failed(GitError),
}

/// What became of a set of bumps, in their order.
#[derive(Debug, Default)]
pub struct Report {
    /// Each bump's record and outcome.
    pub outcomes: Vec<(Record, Outcome)>,
    /// Pushes made.
    pub pushes: usize,
}

impl Repo {
    /// Commit every bump and push them to the branch: rebased and retried when the branch
    /// moves, narrowed when the remote rejects some of them. Bumps a person overtook are
    /// dropped. Verifies that the remote holds what was reported landed.
    pub async fn apply(&self, bumps: &[Bump], time: Timestamp) -> Result<Report, GitError> {
        let _lock = lock(&self.dir, self.config.lock_timeout).await?;
        let mut outcomes: Vec<Option<Outcome>> = vec![None; bumps.len()];
        let mut pushes = 0;
        // A failure part-way (the network, a local error) fails what had not landed yet;
        // what landed before it is reported landed.
        if let Err(e) = self
            .apply_rounds(bumps, time, &mut outcomes, &mut pushes)
            .await
        {
            if outcomes.iter().all(Option::is_none) {
                return Err(e);
            }
            for o in outcomes.iter_mut().filter(|o| o.is_none()) {
                *o = Some(Outcome::Failed(e.clone()));
            }
        }
        let outcomes = bumps
            .iter()
            .zip(outcomes)
            .map(|(b, o)| {
                let o = o.unwrap_or(Outcome::AlreadyInPlace);
                (b.record.clone(), o)
            })
            .collect();
        Ok(Report { outcomes, pushes })
    }

    /// The rounds of [`Repo::apply`]: commit what is pending on the fetched tip, push,
    /// narrow, retry; each bump's outcome set as soon as it is known.
    async fn apply_rounds(
        &self,
        bumps: &[Bump],
        time: Timestamp,
        outcomes: &mut [Option<Outcome>],
        pushes: &mut usize,
    ) -> Result<(), GitError> {
        let branch = self.config.branch.clone();
        let mut backoff = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(2))
            .with_max_times(self.config.max_attempts.saturating_sub(1))
            .with_jitter()
            .build();
        let mut behind = 0;
        let mut refused_before = false;
        loop {
            let pending: Vec<usize> = (0..bumps.len())
                .filter(|i| outcomes[*i].is_none())
                .collect();
            if pending.is_empty() {
                break;
            }
            let tip = self.fetch_locked().await?;
            let todo: Vec<Bump> = pending.iter().map(|i| bumps[*i].clone()).collect();
            let chain = self.commit(tip, &todo, time).await?;
            for (k, outcome) in &chain.skipped {
                outcomes[pending[*k]] = Some(outcome.clone());
            }
            if chain.commits.is_empty() {
                continue;
            }
            // Find the first commit the remote refuses, pushing prefixes of the chain (a
            // prefix longer than a refused one is refused too; each accepted prefix lands).
            // The whole chain first, bisecting a refusal. Once the remote has refused one,
            // it likely refuses more (a hook on prod's files): later rounds probe from the
            // first commit, galloping (1, 2, 4, … past what landed) and bisecting once a
            // probe overshoots. One refused bump among n costs O(log n) pushes; n refused
            // bumps O(n), never n·log n.
            let n = chain.commits.len();
            let mut landed = 0;
            // Commits another promoter had already pushed, identical (same tip, content,
            // second): in place, but not landed by us.
            let mut already = 0;
            let mut refused: Option<(usize, GitError)> = None;
            let mut moved = false;
            let mut probe = if refused_before { 1 } else { n };
            let mut step = 1;
            let mut bisecting = !refused_before;
            let mut failure = None;
            loop {
                *pushes += 1;
                let Some(head) = chain.head_at(probe) else {
                    break;
                };
                let pushed = match self.push(head, &branch).await {
                    Ok(pushed) => pushed,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                };
                if matches!(pushed, Pushed::AlreadyThere) {
                    already = probe;
                }
                match pushed {
                    Pushed::Done | Pushed::AlreadyThere => {
                        landed = probe;
                        step *= 2;
                    }
                    Pushed::Behind => {
                        moved = true;
                        break;
                    }
                    Pushed::Rejected(e) => {
                        // A gallop overshot: the refused commit lies between.
                        bisecting |= probe > landed + 1;
                        refused = Some((probe, e));
                    }
                }
                let hi = refused.as_ref().map_or(n + 1, |(hi, _)| *hi);
                if landed == n || hi - landed <= 1 {
                    break;
                }
                probe = if bisecting {
                    landed + (hi - landed) / 2
                } else {
                    (landed + step).min(hi - 1)
                };
            }
            refused_before = refused.is_some();
            if landed > 0 {
                let head = chain.head_at(landed).unwrap_or(tip);
                match self.verify(head, &branch).await {
                    Ok(()) => {}
                    // The branch does not hold what git said it pushed: not landed.
                    Err(e) if e.kind == GitErrorKind::Conflict => return Err(e),
                    // Cannot ask: git's own report of the push stands.
                    Err(e) => {
                        tracing::warn!(error = %e, "could not check the push; git reported it done")
                    }
                }
                for (i, (k, id)) in chain.commits[..landed].iter().enumerate() {
                    outcomes[pending[*k]] = Some(if i < already {
                        Outcome::AlreadyInPlace
                    } else {
                        Outcome::Landed(*id)
                    });
                }
                self.git
                    .run(
                        &self.dir,
                        &["update-ref", TIP_REF, &head.to_string()],
                        "recording the pushed tip",
                    )
                    .await?;
            }
            if let Some(e) = failure {
                return Err(e);
            }
            if let Some((hi, e)) = refused
                && !moved
            {
                let (k, _) = chain.commits[hi - 1];
                tracing::warn!(promotion = %bumps[pending[k]].record.promotion, environment = %bumps[pending[k]].record.environment, error = %e, "the remote refused a bump; the others are pushed without it");
                outcomes[pending[k]] = Some(Outcome::Failed(e));
                continue;
            }
            if moved {
                behind += 1;
                match backoff.next() {
                    Some(wait) => {
                        tracing::info!(attempt = behind, wait = ?wait, "the branch moved while pushing; committing again on its new tip");
                        tokio::time::sleep(wait).await;
                    }
                    None => {
                        let e = GitError::new(
                            GitErrorKind::Conflict,
                            &format!("pushing to {branch} on {}", self.url()),
                            format!("the branch kept moving; gave up after {behind} attempts"),
                        );
                        for o in outcomes.iter_mut().filter(|o| o.is_none()) {
                            *o = Some(Outcome::Failed(e.clone()));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    async fn verify(&self, head: ObjectId, branch: &str) -> Result<(), GitError> {
        let step = format!(
            "checking that {branch} on {} holds the pushed commit",
            self.url()
        );
        let remote = self.remote_head(branch).await?;
        if remote == Some(head) {
            return Ok(());
        }
        // The branch moved on after our push: fine when it still contains our commit.
        if let Some(id) = remote {
            let refspec = format!("+refs/heads/{branch}:{TIP_REF}");
            let _ = self.fetch_refs(&[&refspec], &[], &step).await;
            let (ok, _) = self
                .git
                .spawn(
                    &self.dir,
                    &[
                        "merge-base",
                        "--is-ancestor",
                        &head.to_string(),
                        &id.to_string(),
                    ],
                    &step,
                )
                .await?;
            if ok {
                return Ok(());
            }
        }
        Err(GitError::new(
            GitErrorKind::Conflict,
            &step,
            format!(
                "the push was reported done, and the branch points at {} instead of {head}",
                remote.map_or("nothing".to_string(), |r| r.to_string())
            ),
        ))
    }
}
