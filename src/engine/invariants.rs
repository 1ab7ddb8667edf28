//! The product's promises (DESIGN.md, "Invariants every pass keeps") as a property: random
//! histories of pushes (some re-pushing a tag), passes, a person's edits (up, down, outside
//! the policy, unparseable; dated days back or ahead), `promote` (forward, rollback,
//! forced) and `release`, force-pushes, and — where the environments live on two branches
//! or in two repositories — merges and cherry-picks that carry one environment's records
//! into the other's history; with dev verified, its rollout syncing, going Degraded and
//! recovering, and its controller left reporting a commit forced away. Checked after every
//! pass; a fresh cache decides as a warm one after every step. Pure: the history is built
//! as `Repo::snapshot` would return it (records matched by whose they are, as it matches
//! them) and decided by `decide`; a fresh cache is the same history cut where the snapshot
//! would stop reading. Renames and unrelated commits, which change no entry of a target's
//! history, are covered end to end (`tests/integration/promises.rs`).

use std::cmp::Ordering;
use std::collections::HashMap;

use jiff::Timestamp;
use proptest::prelude::*;

use super::decide::{self, EnvDecision};
use super::fixtures::{IMAGE, at, digest};
use super::holds;
use super::observe::{EnvKey, Observed, env_state, reaches_far_enough};
use crate::gitops::message::{Actor, HoldChange, Record};
use crate::gitops::{Entry, TargetHistory, Value};
use crate::image::{ImageFacts, Repository, Tag};
use crate::policy::Decision;
use crate::rules::Rules;

const ENVS: [&str; 2] = ["dev", "prod"];
const SOAK_HOURS: i64 = 24;

/// How often each kind of step, and each kind of decision, was reached over every case
/// (shrinking included): the test fails when one never is.
static REACHED: std::sync::Mutex<std::collections::BTreeMap<&'static str, usize>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// What every run must reach at least once.
const MUST_REACH: [&str; 27] = [
    "layout: one branch",
    "layout: a branch per environment",
    "layout: two repositories",
    "step: merge dev's branch into prod's",
    "step: merge carrying a release record",
    "step: cherry-pick dev's record onto prod",
    "step: sync",
    "step: degrade",
    "step: recover",
    "decision: promote prod from a verified dev",
    "pass: the controller reports a commit forced away",
    "step: force-push past a change seen running",
    "decision: promote prod after a force-push",
    "step: wait",
    "step: push",
    "step: re-push",
    "step: hand edit",
    "step: hand edit dated days back",
    "step: hand edit dated ahead",
    "step: promote by hand",
    "step: release",
    "decision: promote",
    "decision: promote prod after a soak",
    "decision: hold",
    "decision: downgrade refused",
    "decision: soak wait",
    "decision: rolled back upstream",
];

fn reached(kind: &'static str) {
    let mut reached = REACHED.lock().unwrap_or_else(|p| p.into_inner());
    *reached.entry(kind).or_default() += 1;
}

/// What happens next.
#[derive(Debug, Clone)]
enum Action {
    /// Time passes.
    Wait(u8),
    /// CI pushes `1.<minor>.0`, or pushes it again (other bits).
    Push { minor: u8, repush: bool },
    /// A pass: decide, then write every promotion.
    Pass,
    /// A person edits an environment's file, in a commit dated `skew` hours off the clock
    /// (their writer chose the date: days back, or ahead).
    Hand { env: usize, edit: Edit, skew: i8 },
    /// A person runs `promote --tag`.
    Promote { env: usize, edit: Edit },
    /// A person runs `release`.
    Release { env: usize },
    /// Someone forces dev's branch back past its newest change.
    ForcePush,
    /// A person merges dev's branch into prod's (a branch per environment): prod takes
    /// dev's value, and dev's records arrive with the merge.
    Merge,
    /// A person cherry-picks (or copies, across repositories) dev's newest recorded change
    /// onto prod: the same value, the same message.
    CherryPick,
    /// dev's controller syncs dev's branch as it is now, and runs it healthy.
    Sync,
    /// dev's rollout goes Degraded.
    Degrade,
    /// dev's rollout is healthy again (the controller says since when).
    Recover,
}

/// Where the two environments live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// One branch of one repository, a file each.
    OneBranch,
    /// One file, on a branch per environment.
    BranchPerEnv,
    /// One file, in two repositories.
    TwoRepos,
}

/// dev, then prod from dev after a day, pinning digests, laid out as `layout`; dev's
/// rollout read from Argo CD when `verified`.
fn chain(layout: Layout, verified: bool) -> Rules {
    let (dev_file, prod_file, dev_at, prod_at) = match layout {
        Layout::OneBranch => ("apps/dev.yaml", "apps/prod.yaml", "", ""),
        Layout::BranchPerEnv => (
            "apps/app.yaml",
            "apps/app.yaml",
            "      branch: dev\n",
            "      branch: prod\n",
        ),
        Layout::TwoRepos => (
            "apps/app.yaml",
            "apps/app.yaml",
            "",
            "      repository: platform\n",
        ),
    };
    let verify = match verified {
        true => "      verify: { argocd: { application: app-dev } }\n",
        false => "",
    };
    let repositories = match layout {
        Layout::TwoRepos => {
            "  repositories: [{ name: platform, url: https://git.example.com/acme/platform.git }]\n"
        }
        _ => "",
    };
    let settings = format!(
        "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git:\n    url: https://git.example.com/acme/gitops.git\n    author: {{ name: tagpromoter, email: bot@example.com }}\n{repositories}"
    );
    let promotion = format!(
        "apiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: app }}\nspec:\n  image: {IMAGE}\n  environments:\n    - name: dev\n{dev_at}{verify}      policy: {{ semver: '^1.0.0' }}\n      target: {{ helm: {{ file: {dev_file}, tag: image.tag }} }}\n    - name: prod\n{prod_at}      from: dev\n      soak: 24h\n      pinDigest: true\n      policy: {{ semver: '^1.0.0' }}\n      target: {{ helm: {{ file: {prod_file}, tag: image.tag, digest: image.digest }} }}\n"
    );
    crate::rules::parse_sources(
        std::path::Path::new("rules"),
        &[
            (std::path::PathBuf::from("settings.yaml"), settings),
            (std::path::PathBuf::from("app.yaml"), promotion),
        ],
    )
    .unwrap_or_else(|d| panic!("{d:?}"))
}

/// A case: the layout, whether dev is verified, and what happens.
fn case() -> impl Strategy<Value = (Layout, bool, Vec<Action>)> {
    let layout = prop_oneof![
        Just(Layout::OneBranch),
        Just(Layout::BranchPerEnv),
        Just(Layout::TwoRepos)
    ];
    (
        layout,
        any::<bool>(),
        prop::collection::vec(action(), 1..40),
    )
}

/// What a pass reads the histories for: the engine (records matched by whose they are, as
/// the snapshot matches them), or the oracle (records kept where the model knows them to
/// be the environment's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Engine,
    Oracle,
}

/// dev's controller: the commit it runs (by number), whether healthy, and since when.
#[derive(Debug, Clone, Copy)]
struct Controller {
    revision: u32,
    healthy: bool,
    since: Timestamp,
}

/// Which value a person chooses.
#[derive(Debug, Clone, Copy)]
enum Edit {
    /// A listed version above what runs.
    Up,
    /// A listed version below what runs.
    Down,
    /// A version the range does not accept (a hotfix prerelease, or 7.0.0).
    Outside(bool),
    /// A tag the order cannot place.
    Unparseable,
}

fn action() -> impl Strategy<Value = Action> {
    let env = 0..ENVS.len();
    let edit = prop_oneof![
        Just(Edit::Up),
        Just(Edit::Down),
        any::<bool>().prop_map(Edit::Outside),
        Just(Edit::Unparseable),
    ];
    prop_oneof![
        4 => (1u8..30).prop_map(Action::Wait),
        3 => (1u8..6, any::<bool>()).prop_map(|(minor, repush)| Action::Push { minor, repush }),
        6 => Just(Action::Pass),
        1 => (env.clone(), edit.clone(), prop_oneof![3 => Just(0i8), 1 => -72i8..-1, 1 => 1i8..24])
            .prop_map(|(env, edit, skew)| Action::Hand { env, edit, skew }),
        1 => (env.clone(), edit).prop_map(|(env, edit)| Action::Promote { env, edit }),
        1 => env.prop_map(|env| Action::Release { env }),
        1 => Just(Action::ForcePush),
        1 => Just(Action::Merge),
        1 => Just(Action::CherryPick),
        2 => Just(Action::Sync),
        1 => Just(Action::Degrade),
        1 => Just(Action::Recover),
    ]
}

/// The registry and the repository, as the engine would read them.
struct Model {
    rules: Rules,
    /// Hours after [`at`]`(0)`.
    now: i64,
    /// Each tag: (its generation, hour built).
    tags: Vec<(String, u8, i64)>,
    /// Each environment's history, oldest first (the first is the initial commit).
    entries: [Vec<Entry>; 2],
    /// Seconds added to each event, so that no two commits share a time.
    tick: i64,
    /// The bot's sightings ledger (the downstream's, on the remote), as passes wrote it.
    sightings: crate::gitops::sightings::Sightings,
    /// Each commit's date, by its number (its place on the branch; 0: the first).
    times: Vec<Timestamp>,
    /// When a pass first saw each of dev's entries (by index) with its tag listed.
    first_seen: HashMap<usize, Timestamp>,
    /// dev's changes (by commit number) a pass saw as what dev runs.
    seen_running: std::collections::HashSet<u32>,
    /// dev's entry (by index) running again after a force-push past one seen running, and
    /// (once a pass sees it) since when.
    resumed: (Option<usize>, HashMap<usize, Timestamp>),
    /// Commits forced away (a fresh read never stops at one).
    gone: std::collections::HashSet<u32>,
    /// Whether a force-push happened in this case (for the counts).
    forced: bool,
    layout: Layout,
    /// Each environment's branch (an index into `on_branch`).
    branch_of: [usize; 2],
    /// The commits of each branch, by number, oldest first.
    on_branch: Vec<Vec<u32>>,
    /// The commits of prod whose records are dev's (merged or cherry-picked).
    foreign: std::collections::HashSet<u32>,
    /// How many of dev's entries a merge brought to prod's branch so far.
    merged: usize,
    /// dev's controller, when dev is verified.
    controller: Option<Controller>,
    /// How a pass last saw each of dev's values (by entry index) roll out while it was
    /// dev's value: healthy since a time, or not running healthy at a time (a later
    /// sighting never moves the start earlier).
    rollout_seen: HashMap<usize, (Timestamp, bool)>,
    /// When the controller stopped running each of dev's values (by entry index): a sync
    /// to a later one.
    stopped: HashMap<usize, Timestamp>,
}

/// The `n`th commit's id.
fn commit_id(n: u32) -> gix::ObjectId {
    let mut id = [0u8; 20];
    id[..4].copy_from_slice(&n.to_be_bytes());
    id[19] = 1;
    gix::ObjectId::from_bytes_or_panic(&id)
}

impl Model {
    fn new(layout: Layout, verified: bool) -> Self {
        let initial = |tag: &str, n| Entry {
            id: commit_id(n),
            time: at(0),
            author: "bob".into(),
            subject: String::new(),
            record: None,
            value: Some(Value {
                tag: Some(tag.into()),
                digest: None,
                readable: true,
            }),
        };
        let tags = ["1.0.0", "1.0.1-hotfix.1", "7.0.0", "latest"];
        reached(match layout {
            Layout::OneBranch => "layout: one branch",
            Layout::BranchPerEnv => "layout: a branch per environment",
            Layout::TwoRepos => "layout: two repositories",
        });
        let two = layout != Layout::OneBranch;
        Self {
            layout,
            branch_of: [0, usize::from(two)],
            on_branch: vec![vec![0]; 1 + usize::from(two)],
            foreign: Default::default(),
            merged: 1,
            controller: verified.then(|| Controller {
                revision: 0,
                healthy: true,
                since: at(0),
            }),
            rollout_seen: Default::default(),
            stopped: Default::default(),
            rules: chain(layout, verified),
            now: 1,
            tags: tags.iter().map(|t| (t.to_string(), 0, 0)).collect(),
            entries: [vec![initial("1.0.0", 0)], vec![initial("1.0.0", 0)]],
            tick: 0,
            sightings: Default::default(),
            times: vec![at(0)],
            first_seen: HashMap::new(),
            seen_running: Default::default(),
            resumed: Default::default(),
            gone: Default::default(),
            forced: false,
        }
    }

    /// The time of the next event: the model's hour, plus a second per event so far.
    fn clock(&mut self) -> Timestamp {
        self.tick += 1;
        at(self.now) + jiff::SignedDuration::from_secs(self.tick)
    }

    fn facts(&self) -> HashMap<Tag, ImageFacts> {
        self.tags
            .iter()
            .map(|(t, generation, built)| {
                let facts = ImageFacts {
                    digest: digest(t, *generation),
                    platforms: vec!["linux/amd64".into()],
                    created: Some(at(*built)),
                    labels: Default::default(),
                    depth: crate::image::Depth::Whole,
                };
                (Tag::new(t).unwrap(), facts)
            })
            .collect()
    }

    /// What a pass observes as `view` reads it, each environment's history read back to
    /// commit `cuts[env]` (all of it when `None`).
    fn observed(&self, cuts: [Option<u32>; 2], view: View) -> Observed {
        let image = Repository::new(IMAGE).unwrap();
        let listed: crate::registry::TagList = self
            .tags
            .iter()
            .map(|(t, ..)| Tag::new(t).unwrap())
            .collect();
        let p = &self.rules.promotions[0];
        let environments: HashMap<EnvKey, super::observe::EnvState> = p
            .environments
            .iter()
            .enumerate()
            .map(|(i, env)| {
                let cut = cuts[i].map(|n| (n, self.times[n as usize]));
                let entries = self.as_read(i, view);
                (EnvKey::of(p, env), env_state(&history(&entries, cut)))
            })
            .collect();
        let mut observed = Observed {
            tips: Default::default(),
            unreadable: Default::default(),
            images: HashMap::from([(image.clone(), Ok(std::sync::Arc::new(listed)))]),
            facts: HashMap::from([(image, self.facts())]),
            environments,
            files: HashMap::new(),
            deployments: HashMap::new(),
            rolled_out: HashMap::new(),
            judged: HashMap::new(),
            running: HashMap::new(),
            sightings: p
                .environments
                .iter()
                .map(|e| (e.destination.clone(), (self.sightings.clone(), None)))
                .collect(),
        };
        // dev's controller, judged against the commit that set dev's value, as
        // `verify::observe_deployments` judges it.
        let dev = EnvKey::of(p, &p.environments[0]);
        let set_by = observed
            .environments
            .get(&dev)
            .and_then(|s| s.timeline.changes.last())
            .and_then(|c| Some((c.commit.clone()?, c.since)));
        if let (Some(c), Some((commit, landed))) = (self.controller, set_by) {
            let runs = match self.runs(c.revision, number_of_hex(&commit)) {
                true => Ok(()),
                false => Err(format!("the controller runs commit {}", c.revision)),
            };
            let state = match c.healthy {
                true => crate::deploy::RolloutState::Healthy {
                    since: Some(c.since),
                },
                false => crate::deploy::RolloutState::Degraded {
                    message: "Degraded".into(),
                },
            };
            let deployment = super::verify::judge(&state, runs, landed, || None);
            // Moved on from what the controller runs: which of dev's changes that is.
            if !matches!(deployment, super::verify::Deployment::Deployed { .. }) {
                let changes = &observed.environments[&dev].timeline.changes;
                let newest = changes.iter().enumerate().rev().find(|(_, x)| {
                    x.commit
                        .as_deref()
                        .is_some_and(|id| self.runs(c.revision, number_of_hex(id)))
                });
                let running = super::verify::Running {
                    commit: newest.and_then(|(_, x)| x.commit.clone()),
                    healthy_since: newest
                        .filter(|(i, _)| c.healthy && i + 1 < changes.len())
                        .map(|(_, x)| c.since.max(x.since)),
                };
                observed.running.insert(dev.clone(), running);
            }
            observed.deployments.insert(dev.clone(), deployment);
            observed.judged.insert(dev, commit);
        }
        observed
    }

    /// Environment `env`'s history as `view` reads it.
    fn as_read(&self, env: usize, view: View) -> Vec<Entry> {
        let p = &self.rules.promotions[0];
        let e = &p.environments[env];
        let query = crate::gitops::TargetQuery {
            file: e.target.file().to_path_buf(),
            target: p.manifest_target(e),
            id: p.target_id(e),
            names: (p.name.clone(), e.name.clone()),
            others: Vec::new(),
            identity: self.identity(env),
            shared: self.layout != Layout::OneBranch,
        };
        self.entries[env]
            .iter()
            .filter_map(|entry| {
                let mut entry = entry.clone();
                entry.record = entry.record.filter(|r| match view {
                    View::Engine => crate::gitops::snapshot::whose(r, &query),
                    View::Oracle => !self.foreign.contains(&number(&entry.id)),
                });
                (entry.record.is_some() || entry.value.is_some()).then_some(entry)
            })
            .collect()
    }

    /// The repository and branch environment `env` lives on.
    fn identity(&self, env: usize) -> crate::rules::Identity {
        let e = &self.rules.promotions[0].environments[env];
        self.rules
            .settings
            .identity(&e.destination)
            .unwrap_or_else(|| panic!("{} has no repository", e.name))
    }

    /// Whether the controller running commit `revision` runs commit `commit` of dev's
    /// branch (or a later one): only what the branch as fetched reaches counts.
    fn runs(&self, revision: u32, commit: u32) -> bool {
        !self.gone.contains(&revision)
            && self.on_branch[self.branch_of[0]].contains(&revision)
            && revision >= commit
    }

    /// Where a fresh cache's reads stop, per environment: on each branch, the newest
    /// commit from which the history reaches as far back as the decisions need (what
    /// `Repo::snapshot` reads at least).
    fn fresh_cuts(&self, now: Timestamp) -> [Option<u32>; 2] {
        let p = &self.rules.promotions[0];
        let mut cuts = [None, None];
        for (branch, commits) in self.on_branch.iter().enumerate() {
            let envs: Vec<usize> = (0..2).filter(|e| self.branch_of[*e] == branch).collect();
            let destination = &p.environments[envs[0]].destination;
            let cut = commits
                .iter()
                .rev()
                .filter(|n| !self.gone.contains(n))
                .copied()
                .find(|n| {
                    let mut tried = cuts;
                    for e in &envs {
                        tried[*e] = Some(*n);
                    }
                    let observed = self.observed(tried, View::Engine);
                    reaches_far_enough(&self.rules, &[&observed.environments], now, &|d| {
                        d == destination
                    })
                });
            for e in envs {
                cuts[e] = cut;
            }
        }
        cuts
    }

    /// A fresh cache decides as a warm one, at `now`.
    fn fresh_decides_as_warm(&self, now: Timestamp) -> Result<(), TestCaseError> {
        let warm = decide::decide(&self.rules, &self.observed([None, None], View::Engine), now);
        let cuts = self.fresh_cuts(now);
        let fresh = decide::decide(&self.rules, &self.observed(cuts, View::Engine), now);
        for (warm, fresh) in warm.iter().zip(&fresh) {
            prop_assert_eq!(
                decision_of(warm),
                decision_of(fresh),
                "{}: a fresh cache read back to {:?} decides otherwise",
                warm.key,
                cuts
            );
        }
        Ok(())
    }

    fn current(&self, env: usize) -> Option<String> {
        self.entries[env]
            .iter()
            .rev()
            .find_map(|e| e.value.as_ref())
            .and_then(|v| v.tag.clone())
    }

    /// The value a person picks.
    fn pick(&self, env: usize, edit: Edit) -> Option<String> {
        let policy =
            self.rules.promotions[0].tag_policy(&self.rules.promotions[0].environments[env]);
        let current = self.current(env)?;
        let versions = self
            .tags
            .iter()
            .map(|(t, ..)| t.as_str())
            .filter(|t| t.starts_with("1.") && !t.contains('-'));
        let none = |_: &str| None;
        match edit {
            Edit::Up => versions
                .filter(|t| policy.order(t, &current, &none) == Ok(Ordering::Greater))
                .min_by(|a, b| policy.order(a, b, &none).unwrap_or(Ordering::Equal))
                .map(str::to_string),
            Edit::Down => versions
                .filter(|t| policy.order(t, &current, &none) == Ok(Ordering::Less))
                .max_by(|a, b| policy.order(a, b, &none).unwrap_or(Ordering::Equal))
                .map(str::to_string),
            Edit::Outside(hotfix) => Some(if hotfix { "1.0.1-hotfix.1" } else { "7.0.0" }.into()),
            Edit::Unparseable => Some("latest".into()),
        }
    }

    fn write(&mut self, env: usize, author: &str, record: Option<Record>, tag: Option<&str>) {
        self.write_dated(env, author, record, tag, 0);
    }

    /// [`Model::write`] in a commit dated `skew` hours off the clock.
    fn write_dated(
        &mut self,
        env: usize,
        author: &str,
        record: Option<Record>,
        tag: Option<&str>,
        skew: i64,
    ) {
        let pinned = self.rules.promotions[0].environments[env].pin_digest;
        let facts = self.facts();
        let value = tag.map(|t| Value {
            tag: Some(t.to_string()),
            digest: pinned
                .then(|| facts.get(t).map(|f| f.digest.to_string()))
                .flatten(),
            readable: true,
        });
        let time = self.clock() + jiff::SignedDuration::from_hours(skew);
        let n = self.commit(env, time);
        self.entries[env].push(Entry {
            id: commit_id(n),
            time,
            author: author.into(),
            subject: String::new(),
            record,
            value,
        });
    }

    /// A new commit on `env`'s branch, dated `time`: its number.
    fn commit(&mut self, env: usize, time: Timestamp) -> u32 {
        self.times.push(time);
        let n = self.times.len() as u32 - 1;
        self.on_branch[self.branch_of[env]].push(n);
        n
    }

    fn record(&self, env: usize, to: &str, actor: Actor, hold: Option<HoldChange>) -> Record {
        let p = &self.rules.promotions[0];
        let e = &p.environments[env];
        Record {
            promotion: p.name.clone(),
            environment: e.name.clone(),
            image: p.image.clone(),
            from: None,
            to: Some(Tag::new(to).unwrap()),
            digest: self.facts().get(to).map(|f| f.digest.clone()),
            actor,
            reason: None,
            forced: false,
            hold,
            target: Some(p.target_id(e)),
            identity: Some(self.identity(env)),
        }
    }

    fn apply(&mut self, action: &Action) -> Result<(), TestCaseError> {
        match *action {
            Action::Wait(hours) => {
                reached("step: wait");
                self.now += i64::from(hours)
            }
            Action::Push { minor, repush } => {
                reached(if repush {
                    "step: re-push"
                } else {
                    "step: push"
                });
                let tag = format!("1.{minor}.0");
                let now = self.now;
                match self.tags.iter_mut().find(|(t, ..)| *t == tag) {
                    Some(known) if repush => *known = (tag, known.1 + 1, now),
                    Some(_) => {}
                    None => self.tags.push((tag, 0, now)),
                }
            }
            Action::Pass => self.pass()?,
            Action::ForcePush => {
                let dev = &mut self.entries[0];
                if dev.len() > 1 && dev.last().is_some_and(|e| e.value.is_some()) {
                    let removed = dev.pop().map(|e| number(&e.id)).unwrap_or_default();
                    self.first_seen.remove(&dev.len());
                    self.rollout_seen.remove(&dev.len());
                    self.stopped.remove(&dev.len());
                    self.merged = self.merged.min(dev.len());
                    self.gone.insert(removed);
                    // What runs now was interrupted (if a pass saw the change removed
                    // running, or it was itself waiting to run again).
                    if self.seen_running.contains(&removed) || self.resumed.0 == Some(dev.len()) {
                        reached("step: force-push past a change seen running");
                        self.forced = true;
                        let last = dev.iter().rposition(|e| e.value.is_some());
                        self.resumed.0 = last;
                        if let Some(i) = last {
                            self.resumed.1.remove(&i);
                        }
                    }
                }
            }
            Action::Merge if self.layout == Layout::BranchPerEnv => self.merge(),
            Action::CherryPick if self.layout != Layout::OneBranch => self.cherry_pick(),
            Action::Merge | Action::CherryPick => {}
            Action::Sync => {
                let tip = self.on_branch[self.branch_of[0]]
                    .iter()
                    .rev()
                    .find(|n| !self.gone.contains(n))
                    .copied();
                let now = self.clock();
                let before = self.running_entry();
                if let (Some(c), Some(tip)) = (&mut self.controller, tip) {
                    reached("step: sync");
                    // (Synced again to what it runs healthy, nothing changes.)
                    if c.revision != tip || !c.healthy {
                        *c = Controller {
                            revision: tip,
                            healthy: true,
                            since: now,
                        };
                    }
                }
                if let Some(before) = before
                    && self.running_entry() != Some(before)
                {
                    self.stopped.insert(before, now);
                }
            }
            Action::Degrade => {
                if let Some(c) = &mut self.controller {
                    reached("step: degrade");
                    c.healthy = false;
                }
            }
            Action::Recover => {
                let now = self.clock();
                if let Some(c) = self.controller.as_mut().filter(|c| !c.healthy) {
                    reached("step: recover");
                    c.healthy = true;
                    c.since = now;
                }
            }
            Action::Hand { env, edit, skew } => {
                reached(match skew {
                    0 => "step: hand edit",
                    ..0 => "step: hand edit dated days back",
                    _ => "step: hand edit dated ahead",
                });
                if let Some(to) = self.pick(env, edit) {
                    self.write_dated(env, "bob", None, Some(&to), i64::from(skew));
                }
            }
            Action::Promote { env, edit } => {
                reached("step: promote by hand");
                let (Some(to), current) = (self.pick(env, edit), self.current(env)) else {
                    return Ok(());
                };
                let p = &self.rules.promotions[0];
                let policy = p.tag_policy(&p.environments[env]);
                let facts = self.facts();
                let created = |t: &str| crate::image::created_of(&facts, t);
                let hold = holds::promote_holds(&policy, &to, current.as_deref(), &created)
                    .then_some(HoldChange::Set { until: None });
                let record = self.record(env, &to, Actor::Person("alice".into()), hold);
                self.write(env, "tagpromoter", Some(record), Some(&to));
            }
            Action::Release { env } => {
                let observed = self.observed([None, None], View::Oracle);
                let p = &self.rules.promotions[0];
                let held = observed.hold(p, &p.environments[env]).is_some_and(|h| {
                    h.active(at(self.now) + jiff::SignedDuration::from_secs(self.tick))
                });
                if let (true, Some(current)) = (held, self.current(env)) {
                    reached("step: release");
                    let record = self.record(
                        env,
                        &current,
                        Actor::Person("alice".into()),
                        Some(HoldChange::Released),
                    );
                    self.write(env, "tagpromoter", Some(record), None);
                }
            }
        }
        Ok(())
    }

    /// A person merges dev's branch into prod's: dev's records since the last merge arrive
    /// (at the merge), and prod's file becomes dev's (its value, no digest pinned).
    fn merge(&mut self) {
        reached("step: merge dev's branch into prod's");
        let time = self.clock();
        let n = self.commit(1, time);
        self.foreign.insert(n);
        let carried: Vec<Record> = self.entries[0][self.merged.min(self.entries[0].len())..]
            .iter()
            .filter_map(|e| e.record.clone())
            .collect();
        self.merged = self.entries[0].len();
        if carried.iter().any(|r| r.hold == Some(HoldChange::Released)) {
            reached("step: merge carrying a release record");
        }
        for record in carried {
            self.entries[1].push(Entry {
                id: commit_id(n),
                time,
                author: "bob".into(),
                subject: String::new(),
                record: Some(record),
                value: None,
            });
        }
        let taken = self.entries[0]
            .iter()
            .rev()
            .find_map(|e| e.value.clone())
            .map(|v| Value { digest: None, ..v });
        let held = self.entries[1].iter().rev().find_map(|e| e.value.clone());
        if taken.is_some() && taken != held {
            self.entries[1].push(Entry {
                id: commit_id(n),
                time,
                author: "bob".into(),
                subject: String::new(),
                record: None,
                value: taken,
            });
        }
    }

    /// A person cherry-picks dev's newest recorded change onto prod (or copies it to prod's
    /// repository): its value and its message, records and all.
    fn cherry_pick(&mut self) {
        let Some(picked) = self.entries[0]
            .iter()
            .rev()
            .find(|e| e.record.is_some() && e.value.is_some())
            .cloned()
        else {
            return;
        };
        reached("step: cherry-pick dev's record onto prod");
        let time = self.clock();
        let n = self.commit(1, time);
        self.foreign.insert(n);
        self.entries[1].push(Entry {
            id: commit_id(n),
            time,
            author: "tagpromoter".into(),
            subject: String::new(),
            record: picked.record,
            value: picked.value.map(|v| Value { digest: None, ..v }),
        });
    }

    /// The index of the entry that set dev's value (the first of the last run of equal
    /// values).
    fn dev_set_by(&self) -> Option<usize> {
        let dev = &self.entries[0];
        let last = dev.iter().rposition(|e| e.value.is_some())?;
        let value = dev[last].value.clone();
        let mut first = last;
        for (i, e) in dev[..last].iter().enumerate().rev() {
            match &e.value {
                None => continue,
                Some(v) if Some(v) == value.as_ref() => first = i,
                Some(_) => break,
            }
        }
        Some(first)
    }

    /// The entry of dev whose value the controller runs now, healthy, if it does.
    fn running_healthy(&self) -> Option<usize> {
        self.controller.filter(|c| c.healthy)?;
        self.running_entry()
    }

    /// The entry of dev whose value the controller runs now: the newest whose commit its
    /// revision reaches.
    fn running_entry(&self) -> Option<usize> {
        let c = self.controller?;
        let i = self.entries[0]
            .iter()
            .rposition(|e| e.value.is_some() && self.runs(c.revision, number(&e.id)))?;
        // (The first of its run of equal values set it.)
        let value = self.entries[0][i].value.clone();
        self.entries[0][..=i]
            .iter()
            .enumerate()
            .rev()
            .take_while(|(_, e)| e.value.is_none() || e.value == value)
            .filter(|(_, e)| e.value.is_some())
            .map(|(j, _)| j)
            .last()
    }

    /// A pass: decide, check every promise, write every promotion.
    fn pass(&mut self) -> Result<(), TestCaseError> {
        let now = self.clock();
        // What dev runs, as this pass sees it.
        if let Some(last) = self.entries[0].iter().rposition(|e| e.value.is_some()) {
            self.seen_running.insert(number(&self.entries[0][last].id));
            if self.resumed.0 == Some(last) {
                self.resumed.1.insert(last, now);
            }
        }
        // Seen by this pass, or moved on from: no longer waiting to be seen.
        self.resumed.0 = None;
        if self
            .controller
            .is_some_and(|c| self.gone.contains(&c.revision))
        {
            reached("pass: the controller reports a commit forced away");
        }
        let observed = self.observed([None, None], View::Engine);
        // What holds, by the model's own knowledge of whose each record is.
        let truth = self.observed([None, None], View::Oracle);
        let decisions = decide::decide(&self.rules, &observed, now);
        // A fresh cache decides as a warm one.
        self.fresh_decides_as_warm(now)?;
        let fresh_observed = self.observed(self.fresh_cuts(now), View::Engine);
        let p = &self.rules.promotions[0];
        let facts = self.facts();
        let created = |t: &str| crate::image::created_of(&facts, t);
        let mut writes = Vec::new();
        for d in &decisions {
            let Ok(decided) = &d.outcome else { continue };
            match &decided.decision {
                Decision::Promote { .. } if d.key.environment == "prod" => {
                    reached("decision: promote prod after a soak");
                    if self.controller.is_some() {
                        reached("decision: promote prod from a verified dev");
                    }
                    if self.forced {
                        reached("decision: promote prod after a force-push");
                    }
                }
                Decision::Promote { .. } => reached("decision: promote"),
                Decision::Blocked {
                    reason: crate::policy::Blocked::Held(_),
                    ..
                } => reached("decision: hold"),
                Decision::Blocked {
                    reason: crate::policy::Blocked::Downgrade { .. },
                    ..
                } => reached("decision: downgrade refused"),
                _ => {}
            }
            for w in decided.decision.waiting() {
                match w.block {
                    crate::policy::Block::Soaking { .. } => reached("decision: soak wait"),
                    crate::policy::Block::RolledBack { .. } => {
                        reached("decision: rolled back upstream")
                    }
                    _ => {}
                }
            }
        }
        for (i, d) in decisions.iter().enumerate() {
            let env = &p.environments[i];
            let policy = p.tag_policy(env);
            let current = d.current.clone();
            let hold = truth.hold(p, env).filter(|h| h.active(now));
            match d.promotes_to() {
                Some(to) => {
                    // A person's value that holds is never overwritten.
                    prop_assert!(hold.is_none(), "{}: wrote {to} over a hold {hold:?}", d.key);
                    // Nothing written automatically is lower than what runs.
                    if let Some(c) = &current
                        && let Ok(order) = policy.order(to.as_str(), c, &created)
                    {
                        prop_assert_eq!(order, Ordering::Greater, "{}: {} -> {}", d.key, c, to);
                    }
                    // A tag reaches prod only once its digest soaked in dev.
                    if env.from.is_some() {
                        let wanted = &facts[to].digest;
                        prop_assert!(
                            self.soaked_in_dev(to.as_str(), wanted, now),
                            "{}: {to} ({wanted}) never ran a day in dev (it decided from {:#?})",
                            d.key,
                            observed.upstream(p, env, now)
                        );
                    }
                    writes.push((i, to.to_string()));
                }
                None => {
                    // An environment that does not move while a newer accepted tag exists
                    // says why.
                    let tags: Vec<Tag> = self
                        .tags
                        .iter()
                        .map(|(t, ..)| Tag::new(t).unwrap())
                        .collect();
                    let newer = current.as_deref().is_some_and(|c| {
                        policy.select(&tags, &created).candidates.iter().any(|t| {
                            policy.order(t.tag.as_str(), c, &created) == Ok(Ordering::Greater)
                        })
                    });
                    if let (true, Ok(decided)) = (newer, &d.outcome) {
                        let silent = matches!(&decided.decision, Decision::UpToDate { waiting, .. } if waiting.is_empty());
                        prop_assert!(
                            !silent,
                            "{}: up to date at {current:?} with newer tags and no word why",
                            d.key
                        );
                    }
                }
            }
        }
        // What the pass saw first goes to the ledger, from a warm read or a fresh one.
        let read = if self.tick % 2 == 0 {
            &observed
        } else {
            &fresh_observed
        };
        for (_, seeing) in super::sightings::seen_by_pass(&self.rules, read, &[], now) {
            self.sightings = seeing.applied_to(&self.sightings);
        }
        // The oracle's own record of how this pass saw dev's value roll out.
        if let (Some(c), Some(i)) = (self.controller, self.dev_set_by()) {
            let e = &self.entries[0][i];
            let seen = match c.healthy && self.runs(c.revision, number(&e.id)) {
                true => (c.since.max(e.time), true),
                false => (now, false),
            };
            let at = self
                .rollout_seen
                .get(&i)
                .map_or(seen.0, |(before, _)| seen.0.max(*before));
            self.rollout_seen.insert(i, (at, seen.1));
        }
        // The oracle's own count: a person's change in dev is first seen by this pass, once
        // its tag is listed.
        for (i, e) in self.entries[0].iter().enumerate() {
            let listed = e
                .value
                .as_ref()
                .and_then(|v| v.tag.as_deref())
                .is_some_and(|t| self.tags.iter().any(|(x, ..)| x == t));
            if listed {
                self.first_seen.entry(i).or_insert(now);
            }
        }
        for (env, to) in writes {
            let record = self.record(env, &to, Actor::Bot, None);
            self.write(env, "tagpromoter", Some(record), Some(&to));
        }
        Ok(())
    }

    /// Whether dev ran `tag` as `wanted` (or with an unrecorded digest) for a day, by
    /// clocks nobody upstream sets: the bot's own write from its time, anyone else's from
    /// when a pass first saw it (counted by the model, not read from the ledger).
    fn soaked_in_dev(&self, tag: &str, wanted: &crate::image::Digest, now: Timestamp) -> bool {
        let entries: Vec<(usize, &Entry)> = self.entries[0]
            .iter()
            .enumerate()
            .filter(|(_, e)| e.value.is_some())
            .collect();
        // A person's change ran from no earlier than its date and when a pass first saw it,
        // and what ran before it until the earlier of the two (its date may lie either way).
        let start = |(i, e): (usize, &Entry)| {
            let start = match &e.record {
                Some(_) => Some(e.time),
                None => self.first_seen.get(&i).map(|s| e.time.max(*s)),
            }?;
            // Running again after a force-push past a change seen running: from then.
            Some(start.max(self.resumed.1.get(&i).copied().unwrap_or(start)))
        };
        let replaced = |(i, e): (usize, &Entry)| match &e.record {
            Some(_) => e.time,
            None => e.time.min(self.first_seen.get(&i).copied().unwrap_or(now)),
        };
        entries.iter().enumerate().any(|(n, &(i, e))| {
            let Some(v) = &e.value else { return false };
            let Some(since) = start((i, e)) else {
                return false;
            };
            let recorded = e.record.as_ref().and_then(|r| r.digest.clone());
            let until = entries
                .get(n + 1)
                .map_or(now, |&(j, next)| replaced((j, next)).min(now));
            // Verified, only what the controller ran healthy counts, as passes saw it: what
            // it runs healthy now, since it turned healthy; a value replaced since, from
            // when the last pass that saw it as dev's value saw it healthy.
            let (since, until) = match self.controller {
                None => (since, until),
                Some(c) => {
                    let seen = self.rollout_seen.get(&i);
                    if self.running_healthy() == Some(i) {
                        let since = since.max(c.since).max(e.time);
                        (seen.map_or(since, |(at, _)| since.max(*at)), now)
                    } else if self.dev_set_by() == Some(i) {
                        return false;
                    } else {
                        // (Until the controller moved on from it: a flap no pass saw
                        // cannot be told, and is not modelled.)
                        let until = self.stopped.get(&i).map_or(until, |t| (*t).min(now));
                        match seen {
                            Some((at, true)) => (since.max(*at), until),
                            _ => return false,
                        }
                    }
                }
            };
            v.tag.as_deref() == Some(tag)
                && recorded.is_none_or(|d| d == *wanted)
                && until.duration_since(since).as_hours() >= SOAK_HOURS
        })
    }
}

/// A decision, without what only the newest commits show.
/// (How long an interrupted value ran is shown as far as the read tells: a history read
/// from part-way starts that value at where reading began, so it may show it shorter.)
fn decision_of(d: &EnvDecision) -> String {
    match &d.outcome {
        Ok(decided) => {
            let mut decision = decided.decision.clone();
            let (Decision::Blocked { waiting, .. }
            | Decision::UpToDate { waiting, .. }
            | Decision::Promote { waiting, .. }) = &mut decision;
            for w in waiting {
                if let crate::policy::Block::SoakInterrupted { ran_for } = &mut w.block {
                    *ran_for = jiff::SignedDuration::ZERO;
                }
            }
            format!("{decision:?}")
        }
        Err(p) => format!("error {}", p.class()),
    }
}

/// [`number`] of a commit written in hex.
fn number_of_hex(hex: &str) -> u32 {
    gix::ObjectId::from_hex(hex.as_bytes()).map_or(u32::MAX, |id| number(&id))
}

/// The place on the branch of the commit `id` (see [`commit_id`]).
fn number(id: &gix::ObjectId) -> u32 {
    let b = id.as_bytes();
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// A target's history as `Repo::snapshot` returns it when it reads back to commit `cut`
/// (its number, and its date): the commit at the cut with the value the target held
/// then, and every later one — later on the branch, whatever their dates say.
fn history(entries: &[Entry], cut: Option<(u32, Timestamp)>) -> TargetHistory {
    let current = entries
        .iter()
        .rev()
        .find_map(|e| e.value.clone())
        .ok_or_else(|| {
            crate::gitops::GitError::new(crate::gitops::GitErrorKind::Target, "reading", "no value")
        });
    let Some((cut, time)) = cut else {
        return TargetHistory {
            current,
            entries: entries.to_vec(),
            from_start: true,
        };
    };
    let held = entries
        .iter()
        .rev()
        .filter(|e| number(&e.id) <= cut)
        .find_map(|e| e.value.clone());
    let at_cut = entries.iter().find(|e| number(&e.id) == cut);
    // The commit at the cut (of this target or another: then one no change was made by).
    let mut read = vec![Entry {
        id: commit_id(cut),
        time,
        author: at_cut.map_or_else(String::new, |e| e.author.clone()),
        subject: String::new(),
        record: at_cut.and_then(|e| e.record.clone()),
        value: held,
    }];
    read.extend(entries.iter().filter(|e| number(&e.id) > cut).cloned());
    TargetHistory {
        current,
        entries: read,
        from_start: false,
    }
}

/// The promises after every pass of 10,000 random histories, and how often each kind of
/// step and decision was reached (printed; the test fails when one never is).
#[test]
fn every_pass_keeps_the_promises() {
    let config = ProptestConfig {
        cases: 10_000,
        // Replays the seeds kept in proptest-regressions/ first, as `proptest!` does.
        source_file: Some(file!()),
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&case(), |(layout, verified, actions)| {
        let mut model = Model::new(layout, verified);
        for a in &actions {
            model.apply(a)?;
            let now = at(model.now) + jiff::SignedDuration::from_secs(model.tick);
            model.fresh_decides_as_warm(now)?;
        }
        model.pass()
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let reached = REACHED.lock().unwrap_or_else(|p| p.into_inner());
    eprintln!("every_pass_keeps_the_promises reached: {reached:?}");
    for kind in MUST_REACH {
        assert!(
            reached.get(kind).is_some_and(|n| *n > 0),
            "never reached: {kind} ({reached:?})"
        );
    }
}
