//! One part of the series per concern. Each part registers its series and records plain
//! values, so that the registry client, the GitOps repository, alert delivery, the webhook
//! receivers and the engine each hold only their own part (a cheap clone: the series are
//! shared handles) and `metrics` depends on none of them.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

/// How verified environments stand, as [`PassFigures::rollouts`] counts them.
pub const ROLLOUT_STATES: [&str; 4] = ["deploying", "unhealthy", "mismatch", "unknown"];

fn result(result: &str) -> ResultLabels {
    ResultLabels {
        result: result.into(),
    }
}

/// A counter family by `result`, with the given results at 0 from the start (so that
/// rate() and increase() work from the first scrape).
fn by_result(known: &[&str]) -> Family<ResultLabels, Counter> {
    let family = Family::<ResultLabels, Counter>::default();
    for r in known {
        family.get_or_create(&result(r)).inc_by(0);
    }
    family
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    host: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HostLabels {
    host: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 12))
}

/// Registry requests: `registry_requests_total{host,status}` and their latency.
#[derive(Clone, Debug)]
pub struct RegistryRequests {
    requests: Family<RequestLabels, Counter>,
    latency: Family<HostLabels, Histogram, fn() -> Histogram>,
}

impl RegistryRequests {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<HostLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "registry_requests",
            "Registry requests, by host and HTTP status (or error)",
            requests.clone(),
        );
        registry.register_with_unit(
            "registry_request_duration",
            "Registry request latency, by host",
            Unit::Seconds,
            latency.clone(),
        );
        Self { requests, latency }
    }

    /// A request to `host` answered `status` (or failed: `error`) after `latency`.
    pub fn request(&self, host: &str, status: &str, latency: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                host: host.into(),
                status: status.into(),
            })
            .inc();
        self.latency
            .get_or_create(&HostLabels { host: host.into() })
            .observe(latency.as_secs_f64());
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PushLabels {
    repository: String,
    result: String,
}

/// Pushes to the GitOps repositories: `git_pushes_total{repository,result}`.
#[derive(Clone, Debug)]
pub struct GitPushes {
    pushes: Family<PushLabels, Counter>,
    repository: String,
}

impl GitPushes {
    const RESULTS: [&str; 4] = ["ok", "rejected", "behind", "error"];

    pub(super) fn register(registry: &mut Registry) -> Self {
        let pushes = Family::<PushLabels, Counter>::default();
        registry.register(
            "git_pushes",
            "Git pushes, by repository and result",
            pushes.clone(),
        );
        Self {
            pushes,
            repository: String::new(),
        }
        .of("default")
    }

    /// The pushes to the repository named `repository` (its series at 0 from now on).
    pub fn of(&self, repository: &str) -> Self {
        let part = Self {
            pushes: self.pushes.clone(),
            repository: repository.to_string(),
        };
        for r in Self::RESULTS {
            part.pushes.get_or_create(&part.labels(r)).inc_by(0);
        }
        part
    }

    fn labels(&self, result: &str) -> PushLabels {
        PushLabels {
            repository: self.repository.clone(),
            result: result.into(),
        }
    }

    /// A push ended with `result` (`ok`, `rejected`, `behind`, `error`).
    pub fn push(&self, result: &str) {
        self.pushes.get_or_create(&self.labels(result)).inc();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabels {
    sink: String,
    result: String,
}

/// Alert deliveries: `alerts_sent_total{sink,result}`.
#[derive(Clone, Debug)]
pub struct AlertDeliveries {
    sent: Family<SinkLabels, Counter>,
}

impl AlertDeliveries {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let sent = Family::<SinkLabels, Counter>::default();
        registry.register(
            "alerts_sent",
            "Alert deliveries, by sink and result",
            sent.clone(),
        );
        Self { sent }
    }

    /// A delivery to a sink ended with `result` (`ok`, `failed`, `dropped`).
    pub fn sent(&self, sink: &str, result: &str) {
        self.sent
            .get_or_create(&SinkLabels {
                sink: sink.into(),
                result: result.into(),
            })
            .inc();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReceiverLabels {
    receiver: String,
    result: String,
}

/// Incoming webhooks: `webhooks_total{receiver,result}`.
#[derive(Clone, Debug)]
pub struct Webhooks {
    received: Family<ReceiverLabels, Counter>,
}

impl Webhooks {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let received = Family::<ReceiverLabels, Counter>::default();
        registry.register(
            "webhooks",
            "Incoming webhooks, by receiver and result (accepted, forwarded, ignored, replayed, unauthorized, too-large, malformed, error); receiver forward counts those passed to their shard (ok, failed)",
            received.clone(),
        );
        Self { received }
    }

    /// A webhook reached `receiver` and ended as `result`.
    pub fn received(&self, receiver: &str, result: &str) {
        self.received
            .get_or_create(&ReceiverLabels {
                receiver: receiver.into(),
                result: result.into(),
            })
            .inc();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EnvLabels {
    promotion: String,
    environment: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// What one pass did, in plain values: what [`Passes::record`] takes.
#[derive(Debug, Clone, Default)]
pub struct PassFigures {
    /// How long it took.
    pub duration: Duration,
    /// Whether anything failed.
    pub failed: bool,
    /// When it ran, in Unix seconds.
    pub at: f64,
    /// One result per bump tried (`landed`, `failed`, `superseded`, `skipped`,
    /// `proposed`, `declined`).
    pub bumps: Vec<&'static str>,
    /// `(promotion, environment)` of every environment decided (and written, if it had to
    /// be) without a failure.
    pub succeeded: Vec<(String, String)>,
    /// Environments behind and stalled, when the pass covered every promotion (a pass
    /// over some only leaves the gauges as the last full pass set them).
    pub fleet: Option<(i64, i64)>,
    /// With `fleet`: verified environments whose value is not deployed, by
    /// [`ROLLOUT_STATES`] (in that order).
    pub rollouts: [i64; ROLLOUT_STATES.len()],
}

/// Passes: their duration, results, bumps, the fleet's gauges and per-environment success.
#[derive(Clone, Debug)]
pub struct Passes {
    duration: Histogram,
    passes: Family<ResultLabels, Counter>,
    promotions: Family<ResultLabels, Counter>,
    behind: Gauge,
    stalled: Gauge,
    not_deployed: Family<StateLabels, Gauge>,
    last_success: Family<EnvLabels, FloatGauge>,
    last_pass: FloatGauge,
    interval: Gauge,
}

impl Passes {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let part = Self {
            duration: Histogram::new(exponential_buckets(0.05, 2.0, 12)),
            passes: by_result(&["ok", "failed"]),
            promotions: by_result(&["landed", "failed", "superseded", "skipped"]),
            behind: Gauge::default(),
            stalled: Gauge::default(),
            not_deployed: Family::default(),
            last_success: Family::default(),
            last_pass: FloatGauge::default(),
            interval: Gauge::default(),
        };
        registry.register_with_unit(
            "pass_duration",
            "How long a pass took",
            Unit::Seconds,
            part.duration.clone(),
        );
        registry.register(
            "passes",
            "Passes, by whether anything failed",
            part.passes.clone(),
        );
        registry.register(
            "promotions",
            "Bumps, by result (landed, failed, superseded, skipped)",
            part.promotions.clone(),
        );
        registry.register(
            "environments_behind",
            "Environments with an eligible newer tag not written yet",
            part.behind.clone(),
        );
        registry.register(
            "environments_stalled",
            "Environments whose eligible tag has waited longer than stallAfter",
            part.stalled.clone(),
        );
        for state in ROLLOUT_STATES {
            part.not_deployed
                .get_or_create(&StateLabels {
                    state: state.into(),
                })
                .set(0);
        }
        registry.register(
            "environments_not_deployed",
            "Environments with verify: whose value is not deployed, by state (deploying, unhealthy, mismatch, unknown)",
            part.not_deployed.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "When each environment was last decided and written without a failure",
            part.last_success.clone(),
        );
        registry.register(
            "last_pass_timestamp_seconds",
            "When the last pass finished",
            part.last_pass.clone(),
        );
        registry.register(
            "interval_seconds",
            "Time between the worker's full passes (Settings.interval)",
            part.interval.clone(),
        );
        part
    }

    /// The worker passes every `seconds` (so that alerts can say "three intervals").
    pub fn interval(&self, seconds: u64) {
        self.interval
            .set(i64::try_from(seconds).unwrap_or(i64::MAX));
    }

    /// Take in one pass.
    pub fn record(&self, pass: &PassFigures) {
        self.duration.observe(pass.duration.as_secs_f64());
        let outcome = if pass.failed { "failed" } else { "ok" };
        self.passes.get_or_create(&result(outcome)).inc();
        self.last_pass.set(pass.at);
        for bump in &pass.bumps {
            self.promotions.get_or_create(&result(bump)).inc();
        }
        for (promotion, environment) in &pass.succeeded {
            self.environment_succeeded(promotion, environment, pass.at);
        }
        if let Some((behind, stalled)) = pass.fleet {
            self.behind.set(behind);
            self.stalled.set(stalled);
            for (state, count) in ROLLOUT_STATES.iter().zip(pass.rollouts) {
                self.not_deployed
                    .get_or_create(&StateLabels {
                        state: (*state).into(),
                    })
                    .set(count);
            }
        }
    }

    /// An environment was decided (and written, if it had to be) without a failure at `at`
    /// (Unix seconds).
    pub fn environment_succeeded(&self, promotion: &str, environment: &str, at: f64) {
        self.last_success
            .get_or_create(&EnvLabels {
                promotion: promotion.into(),
                environment: environment.into(),
            })
            .set(at);
    }
}
