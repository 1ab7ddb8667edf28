//! One pass: observe → decide → apply → report; and a person's `promote` and `release`.
//!
//! [`Engine`] carries the clients (one [`Registry`], one [`Repo`], the forge) and the rules.
//! [`observe`] gathers data concurrently with a deadline, [`landing`] dates changes that
//! pull requests merged, [`decide`] is a pure function of (rules, observed, now), [`apply`]
//! writes the bumps, and [`report`] says what happened.
//! `plan` stops after deciding, `status` renders the decisions, `once` and `run` apply them,
//! `promote` turns a person's request into one decision of its own ([`manual`]).
//!
//! It must not parse YAML, talk HTTP or run git itself: those belong to `manifest`,
//! `registry` and `gitops`.

pub mod apply;
pub mod bump;
pub mod decide;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod holds;
#[cfg(test)]
mod invariants;
pub mod landing;
pub mod manual;
pub mod observe;
pub mod pull_request;
pub mod report;
pub mod sightings;
pub mod verify;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;

pub use apply::{Applied, WriteError};
pub use decide::{Decided, EnvDecision, Problem, Warning};
pub use observe::{EnvCommit, EnvKey, Observed};
pub use report::{EnvReport, PassReport, Scope, State};

use crate::deploy::cluster::Clusters;
use crate::gitops::{GitError, Repo, RepoConfig};
use crate::image::Tag;
use crate::metrics::Metrics;
use crate::policy::Decision;

/// The time a pass is at: now, to the second (what people read — `soaking until`, the
/// ledger, commit dates — has no use for nanoseconds).
pub fn now() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now())
}

/// How many times a pass adds its sightings to a ledger other workers keep moving.
const LEDGER_TRIES: usize = 3;
use crate::registry::{Registry, RegistryError};
use crate::rules::{Destination, Rules};

/// How a pass runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The longest the pass waits for registries; images not listed by then fail alone.
    pub registry_deadline: Duration,
    /// Where to tell how far the listing got (for a progress display), if anywhere.
    pub progress: Option<tokio::sync::watch::Sender<Progress>>,
    /// Keep each repository's last history read for the next pass (a worker): a branch
    /// that did not move is not read again.
    pub keep_history: bool,
}

/// How far a pass's observation got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Images listed (or failed) so far.
    pub listed: usize,
    /// Images to list.
    pub images: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            registry_deadline: Duration::from_secs(60),
            progress: None,
            keep_history: false,
        }
    }
}

/// Why the engine cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The registry client cannot be built.
    #[error("{0}")]
    Registry(#[from] RegistryError),
    /// The GitOps mirror cannot be opened.
    #[error("{0}")]
    Git(#[from] GitError),
    /// The forge client cannot be set up.
    #[error("{0}")]
    Forge(#[from] crate::forge::ForgeSetupError),
}

/// The forge clients of the repositories that name one, by repository name.
type Forges = BTreeMap<String, Arc<dyn crate::forge::Forge>>;

/// The registry and forge clients the settings of `rules` describe.
fn clients(
    rules: &Rules,
    cache_dir: &Path,
    metrics: &Arc<Metrics>,
) -> Result<(Arc<Registry>, Forges), StartError> {
    let registry = Registry::from_settings(&rules.settings)?
        .with_cache_dir(cache_dir)
        .with_metrics(metrics.registry_requests.clone());
    let mut forges = Forges::new();
    for (name, git) in rules.settings.repositories() {
        if let Some(f) = &git.forge {
            let forge = crate::forge::from_settings(f, &git.url)?;
            forges.insert(name.to_string(), Arc::from(forge));
        }
    }
    Ok((Arc::new(registry), forges))
}

/// The mirrors `rules` need that `have` lacks (a new destination, or a repository whose
/// URL moved), opened.
async fn open_missing(
    rules: &Rules,
    cache_dir: &Path,
    options: &Options,
    metrics: &Arc<Metrics>,
    have: &BTreeMap<Destination, Repo>,
) -> Result<BTreeMap<Destination, Repo>, GitError> {
    let mut opened = BTreeMap::new();
    for destination in rules.destinations() {
        let Some(mut config) =
            RepoConfig::for_destination(&rules.settings, &destination, cache_dir)
        else {
            continue;
        };
        config.keep_snapshot = options.keep_history;
        if have
            .get(&destination)
            .is_some_and(|r| r.config().url == config.url)
        {
            continue;
        }
        let repo = Repo::open(config)
            .await?
            .with_metrics(metrics.git_pushes.of(&destination.repository));
        opened.insert(destination, repo);
    }
    Ok(opened)
}

/// The decisions of a pass, before anything is written.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What was observed.
    pub observed: Observed,
    /// Every environment's decision.
    pub decisions: Vec<EnvDecision>,
}

/// The bumps a pass landed: environment, commit, tag.
fn landed_bumps(decisions: &[EnvDecision], applied: &[Applied]) -> Vec<(EnvKey, String, Tag)> {
    decisions
        .iter()
        .zip(applied)
        .filter_map(|(d, a)| match a {
            Applied::Landed { commit, .. } => {
                Some((d.key.clone(), commit.clone(), d.promotes_to()?.clone()))
            }
            _ => None,
        })
        .collect()
}

/// `plan` as it stands after the pass's own bumps (`landed`): their environments hold
/// their new tags, and the environments that take tags from them are decided again from
/// that — so that the report (and `status`, `/status`, the board) never shows staging
/// "waiting: dev has not run it" beside the dev the same pass moved. Environments that
/// tried to write this pass keep their decisions (what was tried); the others unchanged.
fn after_own_bumps(
    rules: &Rules,
    plan: &mut Plan,
    landed: &[(EnvKey, String, Tag)],
    now: Timestamp,
) {
    if landed.is_empty() {
        return;
    }
    for (key, commit, tag) in landed {
        let digest = plan
            .decisions
            .iter()
            .find(|d| d.key == *key)
            .and_then(|d| d.outcome.as_ref().ok()?.digest.clone());
        if let Some(state) = plan.observed.environments.get_mut(key) {
            state.landed(tag, digest, commit, now);
        }
    }
    let fed = |p: &crate::rules::Promotion, env: &crate::rules::Environment| {
        p.upstream_of(env)
            .is_some_and(|up| landed.iter().any(|(k, ..)| *k == EnvKey::of(p, up)))
    };
    let affected = Rules {
        settings: rules.settings.clone(),
        promotions: rules
            .promotions
            .iter()
            .filter(|p| p.environments.iter().any(|e| fed(p, e)))
            .cloned()
            .collect(),
    };
    let mut again: std::collections::HashMap<EnvKey, EnvDecision> =
        decide::decide(&affected, &plan.observed, now)
            .into_iter()
            .map(|d| (d.key.clone(), d))
            .collect();
    for p in &affected.promotions {
        for env in p.environments.iter().filter(|e| fed(p, e)) {
            let key = EnvKey::of(p, env);
            if let (Some(d), Some(new)) = (
                plan.decisions
                    .iter_mut()
                    .find(|d| d.key == key && d.promotes_to().is_none()),
                again.remove(&key),
            ) {
                *d = new;
            }
        }
    }
}

/// The rules and the clients a pass needs.
pub struct Engine {
    rules: Rules,
    registry: Arc<Registry>,
    repos: BTreeMap<Destination, Repo>,
    forges: Forges,
    merges: landing::MergeTimes,
    options: Options,
    metrics: Arc<Metrics>,
    cache_dir: std::path::PathBuf,
    clusters: Arc<Clusters>,
}

impl Engine {
    /// Open the registry client and the GitOps mirror for `rules`.
    pub async fn open(
        rules: Rules,
        cache_dir: &Path,
        options: Options,
    ) -> Result<Self, StartError> {
        Self::open_with_metrics(rules, cache_dir, options, Arc::new(Metrics::new())).await
    }

    /// [`Engine::open`], counting into `metrics` (shared with the server and alerting).
    pub async fn open_with_metrics(
        rules: Rules,
        cache_dir: &Path,
        options: Options,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StartError> {
        let (registry, forges) = clients(&rules, cache_dir, &metrics)?;
        let clusters = Arc::new(Clusters::new(rules.settings.clusters.clone()));
        let repos = open_missing(&rules, cache_dir, &options, &metrics, &BTreeMap::new()).await?;
        Ok(Self {
            rules,
            registry,
            repos,
            forges,
            merges: landing::MergeTimes::default(),
            options,
            metrics,
            cache_dir: cache_dir.to_path_buf(),
            clusters,
        })
    }

    /// The rules in force.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Put new rules in force, with registry and forge clients made from their settings
    /// (hosts, credentials, forges and token files may have changed) and a mirror for each
    /// destination (new repositories and branches opened, moved ones opened afresh). When
    /// a client cannot be made from the new settings, nothing changes and the error says
    /// why.
    pub async fn set_rules(&mut self, rules: Rules) -> Result<(), StartError> {
        let (registry, forges) = clients(&rules, &self.cache_dir, &self.metrics)?;
        let mut opened = open_missing(
            &rules,
            &self.cache_dir,
            &self.options,
            &self.metrics,
            &self.repos,
        )
        .await?;
        let mut kept = std::mem::take(&mut self.repos);
        self.repos = rules
            .destinations()
            .into_iter()
            .filter_map(|d| {
                let repo = opened.remove(&d).or_else(|| kept.remove(&d))?;
                Some((d, repo))
            })
            .collect();
        self.registry = registry;
        self.forges = forges;
        // Kubeconfigs are read again: a rotated token or certificate is used from now on.
        self.clusters = Arc::new(Clusters::new(rules.settings.clusters.clone()));
        self.rules = rules;
        Ok(())
    }

    /// The clients of the clusters whose controllers the rules verify with: made anew
    /// whenever the rules change (kubeconfigs are read again), so the same clients mean the
    /// same rules (the worker's watches rely on it).
    pub fn clusters(&self) -> &Arc<Clusters> {
        &self.clusters
    }

    /// The mirror of `destination`, when some environment writes there.
    pub fn repo(&self, destination: &Destination) -> Option<&Repo> {
        self.repos.get(destination)
    }

    /// Observe and decide at `now`; writes nothing.
    pub async fn plan(&self, now: Timestamp) -> Result<Plan, GitError> {
        self.plan_for(&self.rules, now).await
    }

    async fn plan_for(&self, rules: &Rules, now: Timestamp) -> Result<Plan, GitError> {
        let mut observed =
            observe::observe(rules, &self.registry, &self.repos, &self.options, now).await?;
        for destination in self.repos.keys() {
            if let Some(forge) = self.forges.get(&destination.repository) {
                landing::date_merges(forge, &self.merges, rules, destination, &mut observed, now)
                    .await;
            }
        }
        verify::observe_deployments(rules, &self.clusters, &self.repos, &mut observed).await;
        // Facts are fetched where a decision needs them, round by round: a tag's platforms
        // and age only once it soaked upstream, the winner's digest for the trailer.
        let mut asked = std::collections::HashSet::new();
        loop {
            let wanted = decide::facts_wanted(rules, &observed, now, &asked);
            if wanted.is_empty() {
                break;
            }
            asked.extend(wanted.iter().cloned());
            observe::inspect_more(
                &self.registry,
                &mut observed,
                wanted,
                self.options.registry_deadline,
            )
            .await;
        }
        let decisions = decide::decide(rules, &observed, now);
        Ok(Plan {
            observed,
            decisions,
        })
    }

    /// Start the stall clock of the bumps that did not land and whose tag's creation time
    /// was not read (the tag to write needs only its digest): read it now, for them alone.
    async fn date_unlanded(&self, decisions: &mut [EnvDecision], applied: &[Applied]) {
        let undated: Vec<usize> = decisions
            .iter()
            .zip(applied)
            .enumerate()
            .filter(|(_, (d, a))| {
                matches!(a, Applied::Failed(_) | Applied::Skipped { .. })
                    && matches!(
                        &d.outcome,
                        Ok(Decided {
                            decision: Decision::Promote {
                                eligible_since: None,
                                ..
                            },
                            ..
                        })
                    )
            })
            .map(|(i, _)| i)
            .collect();
        let reads = undated.iter().filter_map(|&i| {
            let d = &decisions[i];
            let to = d.promotes_to()?.clone();
            let registry = Arc::clone(&self.registry);
            let image = d.image.clone();
            Some(async move { (i, registry.facts(&image, &to).await) })
        });
        // Within the pass's registry deadline: a registry that hangs now leaves them undated.
        let deadline = self.options.registry_deadline;
        let Ok(reads) = tokio::time::timeout(deadline, futures_util::future::join_all(reads)).await
        else {
            tracing::warn!(
                "the registry did not say in time when the tags of the bumps that failed were created; their stall clocks wait"
            );
            return;
        };
        for (i, read) in reads {
            let created = match read {
                Ok(facts) => facts.created,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read when the tag to write was created; its stall clock waits");
                    None
                }
            };
            if let Ok(Decided {
                decision: Decision::Promote { eligible_since, .. },
                ..
            }) = &mut decisions[i].outcome
            {
                *eligible_since = created;
            }
        }
    }

    /// Push what this pass saw first to each downstream destination's ledger: a ledger
    /// another worker moved meanwhile is fetched again and the sightings added to it (a
    /// few times). Until one that cannot be written can, what changes upstream counts as
    /// seen at a later pass, so soaks cannot end: an environment there waiting for one
    /// fails (class `sightings`, alerted), the others carry a warning.
    async fn record_sightings(
        &self,
        rules: &Rules,
        plan: &mut Plan,
        landed: &[(EnvKey, String, Tag)],
        now: Timestamp,
    ) {
        let mut unwritten = BTreeMap::new();
        for (destination, seeing) in sightings::seen_by_pass(rules, &plan.observed, landed, now) {
            let Some(repo) = self.repos.get(&destination) else {
                continue;
            };
            let mut read = plan.observed.sightings.get(&destination).cloned();
            let mut tries = 0;
            let failure = loop {
                let (ledger, base) = read.unwrap_or_default();
                let updated = seeing.applied_to(&ledger);
                if updated == ledger {
                    break None;
                }
                match repo.write_sightings(&updated, base, now).await {
                    Ok(true) => break None,
                    Ok(false) if tries < LEDGER_TRIES => {
                        tries += 1;
                        match repo.refetch_sightings().await {
                            Ok(again) => read = Some(again),
                            Err(e) => break Some(e.to_string()),
                        }
                    }
                    Ok(false) => break Some("another worker kept moving it".to_string()),
                    Err(e) => break Some(e.to_string()),
                }
            };
            if let Some(error) = failure {
                tracing::warn!(repository = %destination, error = %error, "cannot write the sightings ledger; soaks of what changes upstream cannot start until it can");
                unwritten.insert(destination, error);
            }
        }
        for d in &mut plan.decisions {
            let soaks_here = rules
                .promotions
                .iter()
                .find(|p| p.name == d.key.promotion)
                .and_then(|p| p.environments.iter().find(|e| e.name == d.key.environment))
                .is_some_and(|e| e.from.is_some());
            let (true, Some(error), Ok(decided)) =
                (soaks_here, unwritten.get(&d.destination), &mut d.outcome)
            else {
                continue;
            };
            let warning = decide::Warning::SightingsUnwritten {
                reference: crate::gitops::sightings::ref_of(&d.destination.branch),
                error: error.clone(),
            };
            // A soak it waits for cannot end while nothing is recorded: failing, loudly.
            let soaking = decided
                .decision
                .waiting()
                .iter()
                .any(|w| matches!(w.block, crate::policy::Block::Soaking { .. }));
            match soaking {
                true => d.outcome = Err(Problem::Sightings(warning)),
                false => decided.warnings.push(warning),
            }
        }
    }

    /// The open pull requests whose tag is no longer eligible: closed, saying why, by a pass
    /// that writes (`close`); named in the environments' warnings either way.
    async fn outlived_pull_requests(&self, decisions: &mut [EnvDecision], close: bool) {
        for d in decisions
            .iter_mut()
            .filter(|d| d.write == crate::rules::WriteMode::PullRequest)
        {
            if let Some(forge) = self.forges.get(&d.destination.repository) {
                pull_request::outlived(forge.as_ref(), d, close).await;
            }
        }
    }

    /// One full pass at `now`: observe, decide, write, report. Never fails as a whole: a
    /// repository that cannot be read is the report's `error`.
    pub async fn pass(&self, now: Timestamp) -> PassReport {
        self.run(&Scope::All, now, true).await
    }

    /// A pass over the promotions of `scope` only (a webhook named their images): the
    /// others are neither listed nor decided, and the report says which it covers.
    pub async fn pass_within(&self, scope: &Scope, now: Timestamp) -> PassReport {
        self.run(scope, now, true).await
    }

    /// Observe and decide at `now`, and report it as a pass that wrote nothing (`plan`,
    /// `status`): each bump prepared as `once` would commit it — refused where `once`
    /// would fail — and the files it would change ([`PassReport::planned`]).
    pub async fn preview(&self, now: Timestamp) -> PassReport {
        self.run(&Scope::All, now, false).await
    }

    async fn run(&self, scope: &Scope, now: Timestamp, write: bool) -> PassReport {
        let rules = match scope {
            Scope::All => Cow::Borrowed(&self.rules),
            Scope::Promotions(names) => Cow::Owned(Rules {
                settings: self.rules.settings.clone(),
                promotions: self
                    .rules
                    .promotions
                    .iter()
                    .filter(|p| names.contains(&p.name))
                    .cloned()
                    .collect(),
            }),
        };
        let span = tracing::info_span!("pass", at = %now, write, scope = %scope);
        let mut report =
            tracing::Instrument::instrument(self.run_in_span(&rules, now, write), span).await;
        report.scope = scope.clone();
        if write {
            self.metrics.passes.record(&report.figures());
        }
        report
    }

    async fn run_in_span(&self, rules: &Rules, now: Timestamp, write: bool) -> PassReport {
        let started = Instant::now();
        let requests = self.registry.request_count();
        let mut report = PassReport::new(now, Vec::new());
        match self.plan_for(rules, now).await {
            Ok(mut plan) => {
                let (applied, pushes) = if write {
                    let (applied, pushes) = apply::apply(
                        rules,
                        &self.repos,
                        &self.forges,
                        &plan.decisions,
                        &plan.observed.tips,
                        now,
                    )
                    .await;
                    self.date_unlanded(&mut plan.decisions, &applied).await;
                    let landed = landed_bumps(&plan.decisions, &applied);
                    after_own_bumps(rules, &mut plan, &landed, now);
                    self.record_sightings(rules, &mut plan, &landed, now).await;
                    self.outlived_pull_requests(&mut plan.decisions, true).await;
                    (applied, pushes)
                } else {
                    let (mut looked, planned) =
                        bump::preview(rules, &self.repos, &plan.decisions, &plan.observed.tips)
                            .await;
                    report.planned = planned;
                    for (d, looked) in plan.decisions.iter().zip(looked.iter_mut()) {
                        let forge = self.forges.get(&d.destination.repository);
                        if let (Some(forge), crate::rules::WriteMode::PullRequest) =
                            (forge, d.write)
                        {
                            *looked = pull_request::look(forge.as_ref(), d).await;
                        }
                    }
                    self.outlived_pull_requests(&mut plan.decisions, false)
                        .await;
                    (looked, 0)
                };
                for (d, a) in plan.decisions.iter().zip(&applied) {
                    let _env = tracing::debug_span!(
                        "environment",
                        promotion = %d.key.promotion,
                        environment = %d.key.environment
                    )
                    .entered();
                    match (&d.outcome, a) {
                        (Err(p), _) => {
                            tracing::warn!(class = p.class(), "cannot decide: {p}")
                        }
                        (Ok(decided), Applied::Failed(e)) => {
                            tracing::warn!(decision = ?decided.decision, class = e.class(), "the bump failed: {e}")
                        }
                        (Ok(decided), applied) => {
                            tracing::debug!(decision = ?decided.decision, applied = ?applied, "decided")
                        }
                    }
                }
                report.tips = plan
                    .observed
                    .tips
                    .iter()
                    .map(|(d, tip)| (d.clone(), tip.to_string()))
                    .collect();
                report.pushes = pushes;
                let author = &rules.settings.git.author.name;
                report.environments = plan
                    .decisions
                    .into_iter()
                    .zip(applied)
                    .map(|(decision, applied)| {
                        let landed = match &applied {
                            Applied::Landed { commit, subject } => Some(EnvCommit {
                                id: commit.clone(),
                                time: now,
                                author: author.clone(),
                                subject: subject.clone(),
                            }),
                            _ => None,
                        };
                        // Moved, not copied: a fleet's 30,000 environments would hold
                        // them twice at the pass's peak.
                        let mut recent = plan
                            .observed
                            .environments
                            .get_mut(&decision.key)
                            .map(|s| std::mem::take(&mut s.recent))
                            .unwrap_or_default();
                        if let Some(landed) = landed {
                            recent.insert(0, landed);
                            recent.truncate(observe::RECENT);
                        }
                        EnvReport {
                            decision,
                            applied,
                            recent,
                        }
                    })
                    .collect();
            }
            Err(e) => {
                tracing::error!(error = %e, "the pass cannot read the GitOps repository");
                report.error = Some(e);
            }
        }
        report.registry_requests = self.registry.request_count() - requests;
        report.duration = started.elapsed();
        report
    }
}
