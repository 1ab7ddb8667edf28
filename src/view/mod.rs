//! What people and programs read of a pass, for the commands and the server alike: each
//! environment as a view (JSON for `--output json`, `/status` and the board), text for
//! `status`, `plan` and `once` (`text`), and unified diffs for `plan` ([`diff`]). Pure: a
//! report in, text out; nothing here reads or writes anything.

pub mod diff;
mod text;

pub use text::{once_text, plan_text, status_table};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::engine::{Applied, EnvReport, PassReport, State};
use crate::policy::{Blocked, Decision};

/// One environment, as JSON shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvView {
    /// The promotion.
    pub promotion: String,
    /// The environment.
    pub environment: String,
    /// The repository it writes to, by name (`default`: `git`).
    pub repository: String,
    /// The branch it writes to.
    pub branch: String,
    /// The image.
    pub image: String,
    /// What it runs.
    pub current: Option<String>,
    /// The best eligible tag.
    pub best: Option<String>,
    /// `promote`, `up-to-date`, `blocked` or `error`.
    pub decision: String,
    /// Why it is blocked, when it is.
    pub blocked: Option<String>,
    /// The state's name (`up-to-date`, `soaking`, `frozen`, `held`, `pending`, `stalled`,
    /// `failing`).
    pub state: String,
    /// The state in words.
    pub state_text: String,
    /// Since when the state holds (stalled, held).
    pub since: Option<String>,
    /// Until when it holds (soaking, frozen, held).
    pub until: Option<String>,
    /// Which command lifts what blocks it (a hold, a freeze, a downgrade).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifted_by: Option<String>,
    /// The hold, when there is one in force.
    pub hold: Option<HoldView>,
    /// Better tags and what each waits for, best first.
    pub waiting: Vec<TagWhy>,
    /// Tags that do not pass the policy, and why.
    pub rejected: Vec<TagWhy>,
    /// What people should know about what it runs (re-pushed, gone from the registry).
    pub warnings: Vec<String>,
    /// What writing did: `landed`, `already-in-place`, `superseded`, `failed`, `skipped`.
    pub result: Option<String>,
    /// The commit that landed.
    pub commit: Option<String>,
    /// The pull request proposing the bump, for `write: pull-request`.
    pub pull_request: Option<PullRequestView>,
    /// What failed.
    pub error: Option<ErrorView>,
    /// Its newest commits, newest first.
    #[serde(default)]
    pub recent: Vec<CommitView>,
}

/// A commit that changed an environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitView {
    /// Its id (hex).
    pub id: String,
    /// Committer time.
    pub time: String,
    /// The author's name.
    pub author: String,
    /// The message's first line.
    pub subject: String,
}

/// A pass as `/status` and `--output json` show it; what the board renders, from this
/// worker and from its peers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusDoc {
    /// When it ran.
    pub now: String,
    /// How long it took, in seconds.
    #[serde(default)]
    pub duration_seconds: f64,
    /// The tip it decided on, when it read one repository.
    pub tip: Option<String>,
    /// Each destination's tip (`repository@branch`).
    #[serde(default)]
    pub tips: std::collections::BTreeMap<String, String>,
    /// Every environment.
    pub environments: Vec<EnvView>,
    /// A failure of the whole pass.
    pub error: Option<String>,
    /// The plan's diff (`plan --output json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// The worker's place in a sharded fleet (`/status` of `run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardView>,
}

/// A worker's shard, and which shard owns each promotion of the rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardView {
    /// This worker's index.
    pub index: usize,
    /// How many workers share the fleet.
    pub count: usize,
    /// Every promotion's owner (with more than one shard).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub owners: std::collections::BTreeMap<String, usize>,
}

/// A pull request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PullRequestView {
    /// Its number.
    pub number: u64,
    /// Where it is.
    pub url: String,
    /// `open` or `closed` (unmerged).
    pub state: String,
}

/// A hold.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HoldView {
    /// Who set it.
    pub by: String,
    /// Why.
    pub reason: Option<String>,
    /// Since when.
    pub since: String,
    /// Until when (`None`: until released).
    pub until: Option<String>,
}

/// A tag and a reason.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TagWhy {
    /// The tag.
    pub tag: String,
    /// Why it is not chosen.
    pub why: String,
}

/// A failure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorView {
    /// Its class.
    pub class: String,
    /// Its message.
    pub message: String,
}

/// The JSON view of one environment at `now`.
pub fn view(e: &EnvReport, now: Timestamp) -> EnvView {
    let d = &e.decision;
    let state = e.state(now);
    let (since, until) = match &state {
        State::Soaking { until } | State::Frozen { until } => (None, Some(until.to_string())),
        State::Stalled { since } | State::Deploying { since, .. } => {
            (Some(since.to_string()), None)
        }
        State::Held(h) => (Some(h.since.to_string()), h.until.map(|u| u.to_string())),
        _ => (None, None),
    };
    let (decision, best, blocked, waiting, rejected) = match &d.outcome {
        Err(_) => ("error".into(), None, None, Vec::new(), Vec::new()),
        Ok(decided) => {
            let waiting = decided
                .decision
                .waiting()
                .iter()
                .map(|w| TagWhy {
                    tag: w.tag.to_string(),
                    why: w.block.to_string(),
                })
                .collect();
            let rejected = decided
                .rejected
                .iter()
                .map(|(t, r)| TagWhy {
                    tag: t.to_string(),
                    why: r.to_string(),
                })
                .collect();
            match &decided.decision {
                Decision::UpToDate { current, .. } => (
                    "up-to-date".into(),
                    Some(current.to_string()),
                    None,
                    waiting,
                    rejected,
                ),
                Decision::Promote { to, .. } => (
                    "promote".into(),
                    Some(to.to_string()),
                    None,
                    waiting,
                    rejected,
                ),
                Decision::Blocked { to, reason, .. } => (
                    "blocked".into(),
                    // What runs is above the best the policy accepts: the best there is
                    // is what runs (BEST is never older than CURRENT).
                    match reason {
                        crate::policy::Blocked::Downgrade { current } => Some(current.to_string()),
                        _ => to.as_ref().map(|t| t.to_string()),
                    },
                    Some(reason.to_string()),
                    waiting,
                    rejected,
                ),
            }
        }
    };
    let hold = match &d.outcome {
        Ok(decided) => match &decided.decision {
            Decision::Blocked {
                reason: Blocked::Held(h),
                ..
            } => Some(h),
            _ => None,
        },
        Err(_) => None,
    }
    .or(match &state {
        State::Held(h) => Some(h),
        _ => None,
    })
    .map(|h| HoldView {
        by: h.by.clone(),
        reason: h.reason.clone(),
        since: h.since.to_string(),
        until: h.until.map(|u| u.to_string()),
    });
    let (result, commit) = match &e.applied {
        Applied::Nothing => (None, None),
        Applied::Landed { commit, .. } => (Some("landed"), Some(commit.clone())),
        Applied::AlreadyInPlace => (Some("already-in-place"), None),
        Applied::Superseded { .. } => (Some("superseded"), None),
        Applied::Failed(_) => (Some("failed"), None),
        Applied::Skipped { .. } => (Some("skipped"), None),
        Applied::Proposed { .. } => (Some("proposed"), None),
        Applied::Declined { .. } => (Some("declined"), None),
    };
    let result = result.map(String::from);
    let pull_request = match &e.applied {
        Applied::Proposed { number, url } => Some(PullRequestView {
            number: *number,
            url: url.clone(),
            state: "open".into(),
        }),
        Applied::Declined { number, url } => Some(PullRequestView {
            number: *number,
            url: url.clone(),
            state: "closed".into(),
        }),
        _ => None,
    };
    let error = match (&d.outcome, &e.applied) {
        (Err(p), _) => Some(ErrorView {
            class: p.class().into(),
            message: p.to_string(),
        }),
        (_, Applied::Failed(g)) => Some(ErrorView {
            class: g.class().into(),
            message: g.to_string(),
        }),
        _ => None,
    };
    let warnings = match &d.outcome {
        Ok(decided) => decided.warnings.iter().map(|w| w.to_string()).collect(),
        Err(_) => Vec::new(),
    };
    EnvView {
        promotion: d.key.promotion.clone(),
        environment: d.key.environment.clone(),
        repository: d.destination.repository.clone(),
        branch: d.destination.branch.clone(),
        image: d.image.to_string(),
        current: e.running(),
        best,
        decision,
        blocked,
        state: state.name().into(),
        state_text: state.to_string(),
        since,
        until,
        lifted_by: e.lifted_by(now),
        hold,
        waiting,
        rejected,
        warnings,
        result,
        commit,
        pull_request,
        error,
        recent: e
            .recent
            .iter()
            .map(|c| CommitView {
                id: c.id.clone(),
                time: c.time.to_string(),
                author: c.author.clone(),
                subject: c.subject.clone(),
            })
            .collect(),
    }
}

/// The JSON document of a report (status, plan and once share it).
pub fn json(report: &PassReport, diff: Option<&str>) -> String {
    serde_json::to_string_pretty(&status_doc(report, diff)).unwrap_or_default()
}

/// The document of a report.
pub fn status_doc(report: &PassReport, diff: Option<&str>) -> StatusDoc {
    StatusDoc {
        now: report.now.to_string(),
        duration_seconds: report.duration.as_secs_f64(),
        // One repository: its tip; several: each destination's (`repository@branch`).
        tip: match report.tips.as_slice() {
            [(_, tip)] => Some(tip.clone()),
            _ => None,
        },
        tips: report
            .tips
            .iter()
            .map(|(d, tip)| (d.to_string(), tip.clone()))
            .collect(),
        environments: report
            .environments
            .iter()
            .map(|e| view(e, report.now))
            .collect(),
        error: report.error.as_ref().map(|e| e.to_string()),
        diff: diff.map(str::to_string),
        shard: None,
    }
}
