//! The one metrics struct, handed to the registry client, the GitOps repository, the
//! engine and alert delivery, and served at `/metrics` in Prometheus' text format.
//! Series: `tagpromoter_pass_duration_seconds`, `tagpromoter_passes_total{result}`,
//! `tagpromoter_promotions_total{result}`, `tagpromoter_environments_behind`,
//! `tagpromoter_environments_stalled`, `tagpromoter_last_success_timestamp_seconds{promotion,environment}`,
//! `tagpromoter_last_pass_timestamp_seconds`, `tagpromoter_registry_requests_total{host,status}`,
//! `tagpromoter_registry_request_duration_seconds{host}`, `tagpromoter_git_pushes_total{result}`,
//! `tagpromoter_alerts_sent_total{sink,result}`, `tagpromoter_webhooks_total{receiver,result}`.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::engine::{Applied, PassReport, Scope, State};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EnvLabels {
    promotion: String,
    environment: String,
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabels {
    sink: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReceiverLabels {
    receiver: String,
    result: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 12))
}

/// Every series tagpromoter exports.
pub struct Metrics {
    registry: Registry,
    pass_duration: Histogram,
    passes: Family<ResultLabels, Counter>,
    promotions: Family<ResultLabels, Counter>,
    behind: Gauge,
    stalled: Gauge,
    last_success: Family<EnvLabels, FloatGauge>,
    last_pass: FloatGauge,
    registry_requests: Family<RequestLabels, Counter>,
    registry_latency: Family<HostLabels, Histogram, fn() -> Histogram>,
    git_pushes: Family<ResultLabels, Counter>,
    alerts_sent: Family<SinkLabels, Counter>,
    webhooks: Family<ReceiverLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every series, registered and at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tagpromoter");
        let pass_duration = Histogram::new(exponential_buckets(0.05, 2.0, 12));
        let passes = Family::<ResultLabels, Counter>::default();
        let promotions = Family::<ResultLabels, Counter>::default();
        let behind = Gauge::default();
        let stalled = Gauge::default();
        let last_success = Family::<EnvLabels, FloatGauge>::default();
        let last_pass = FloatGauge::default();
        let registry_requests = Family::<RequestLabels, Counter>::default();
        let registry_latency =
            Family::<HostLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let git_pushes = Family::<ResultLabels, Counter>::default();
        let alerts_sent = Family::<SinkLabels, Counter>::default();
        let webhooks = Family::<ReceiverLabels, Counter>::default();
        registry.register_with_unit(
            "pass_duration",
            "How long a pass took",
            prometheus_client::registry::Unit::Seconds,
            pass_duration.clone(),
        );
        registry.register(
            "passes",
            "Passes, by whether anything failed",
            passes.clone(),
        );
        registry.register(
            "promotions",
            "Bumps, by result (landed, failed, superseded, skipped)",
            promotions.clone(),
        );
        registry.register(
            "environments_behind",
            "Environments with an eligible newer tag not written yet",
            behind.clone(),
        );
        registry.register(
            "environments_stalled",
            "Environments whose eligible tag has waited longer than stallAfter",
            stalled.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "When each environment was last decided and written without a failure",
            last_success.clone(),
        );
        registry.register(
            "last_pass_timestamp_seconds",
            "When the last pass finished",
            last_pass.clone(),
        );
        registry.register(
            "registry_requests",
            "Registry requests, by host and HTTP status (or error)",
            registry_requests.clone(),
        );
        registry.register_with_unit(
            "registry_request_duration",
            "Registry request latency, by host",
            prometheus_client::registry::Unit::Seconds,
            registry_latency.clone(),
        );
        registry.register("git_pushes", "Git pushes, by result", git_pushes.clone());
        registry.register(
            "alerts_sent",
            "Alert deliveries, by sink and result",
            alerts_sent.clone(),
        );
        registry.register(
            "webhooks",
            "Incoming webhooks, by receiver and result (accepted, ignored, unauthorized, too-large, malformed, error)",
            webhooks.clone(),
        );
        // Series that exist from the start read 0 rather than nothing, so rate() and
        // increase() work from the first scrape.
        for result in ["ok", "failed"] {
            passes
                .get_or_create(&ResultLabels {
                    result: result.into(),
                })
                .inc_by(0);
        }
        for result in ["landed", "failed", "superseded", "skipped"] {
            promotions
                .get_or_create(&ResultLabels {
                    result: result.into(),
                })
                .inc_by(0);
        }
        for result in ["ok", "rejected", "behind", "error"] {
            git_pushes
                .get_or_create(&ResultLabels {
                    result: result.into(),
                })
                .inc_by(0);
        }
        Self {
            registry,
            pass_duration,
            passes,
            promotions,
            behind,
            stalled,
            last_success,
            last_pass,
            registry_requests,
            registry_latency,
            git_pushes,
            alerts_sent,
            webhooks,
        }
    }

    /// The exposition in the OpenMetrics text format (what Prometheus asks for first).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::error!("cannot encode the metrics");
        }
        out
    }

    /// The exposition in Prometheus' classic text format 0.0.4 (for `curl`, `promtool
    /// check metrics` and older scrapers): counters are named with their `_total`, and the
    /// OpenMetrics-only `# UNIT` and `# EOF` lines are left out.
    pub fn encode_classic(&self) -> String {
        let open = self.encode();
        let counters: std::collections::HashSet<&str> = open
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.strip_suffix(" counter"))
            .collect();
        let mut out = String::with_capacity(open.len());
        for line in open.lines() {
            if line.starts_with("# UNIT ") || line == "# EOF" {
                continue;
            }
            let meta = ["# HELP ", "# TYPE "]
                .into_iter()
                .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
            match meta {
                Some((prefix, rest)) => {
                    let name = rest.split(' ').next().unwrap_or_default();
                    if counters.contains(name) {
                        out.push_str(&format!("{prefix}{name}_total{}", &rest[name.len()..]));
                    } else {
                        out.push_str(line);
                    }
                }
                None => out.push_str(line),
            }
            out.push('\n');
        }
        out
    }

    /// A registry request to `host` answered `status` (or failed: `error`) after `latency`.
    pub fn registry_request(&self, host: &str, status: &str, latency: Duration) {
        self.registry_requests
            .get_or_create(&RequestLabels {
                host: host.into(),
                status: status.into(),
            })
            .inc();
        self.registry_latency
            .get_or_create(&HostLabels { host: host.into() })
            .observe(latency.as_secs_f64());
    }

    /// A git push ended with `result` (`ok`, `rejected`, `behind`, `error`).
    pub fn git_push(&self, result: &str) {
        self.git_pushes
            .get_or_create(&ResultLabels {
                result: result.into(),
            })
            .inc();
    }

    /// A delivery to a sink ended with `result` (`ok`, `failed`, `dropped`).
    pub fn alert_sent(&self, sink: &str, result: &str) {
        self.alerts_sent
            .get_or_create(&SinkLabels {
                sink: sink.into(),
                result: result.into(),
            })
            .inc();
    }

    /// A webhook reached `receiver` and ended as `result`.
    pub fn webhook(&self, receiver: &str, result: &str) {
        self.webhooks
            .get_or_create(&ReceiverLabels {
                receiver: receiver.into(),
                result: result.into(),
            })
            .inc();
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

    /// Take in a pass's report.
    pub fn observe_pass(&self, report: &PassReport) {
        self.pass_duration.observe(report.duration.as_secs_f64());
        let result = if report.failed() { "failed" } else { "ok" };
        self.passes
            .get_or_create(&ResultLabels {
                result: result.into(),
            })
            .inc();
        let now = report.now.as_millisecond() as f64 / 1000.0;
        self.last_pass.set(now);
        let (mut behind, mut stalled) = (0, 0);
        for e in &report.environments {
            let result = match &e.applied {
                Applied::Landed { .. } => Some("landed"),
                Applied::Failed(_) => Some("failed"),
                Applied::Superseded { .. } => Some("superseded"),
                Applied::Skipped { .. } => Some("skipped"),
                Applied::Proposed { .. } => Some("proposed"),
                Applied::Declined { .. } => Some("declined"),
                Applied::AlreadyInPlace | Applied::Nothing => None,
            };
            if let Some(result) = result {
                self.promotions
                    .get_or_create(&ResultLabels {
                        result: result.into(),
                    })
                    .inc();
            }
            match e.state(report.now) {
                State::Pending => behind += 1,
                State::Stalled { .. } => {
                    behind += 1;
                    stalled += 1;
                }
                State::Failing { .. } => {
                    if e.decision.promotes_to().is_some() {
                        behind += 1;
                    }
                    continue;
                }
                _ => {}
            }
            self.environment_succeeded(&e.decision.key.promotion, &e.decision.key.environment, now);
        }
        // A pass over some promotions only (a webhook's) sees only some of the fleet: the
        // gauges stay as the last full pass set them.
        if report.scope == Scope::All {
            self.behind.set(behind);
            self.stalled.set(stalled);
        }
    }
}
