//! Every series tagpromoter exports, served at `/metrics` in Prometheus' text formats.
//! A leaf: each part (`parts`) registers its own series and takes plain values, and the
//! code that counts (registry client, GitOps repository, alert delivery, webhooks, the
//! engine's report) holds its part; nothing here knows those modules.
//!
//! Series: `tagpromoter_pass_duration_seconds`, `tagpromoter_passes_total{result}`,
//! `tagpromoter_promotions_total{result}`, `tagpromoter_environments_behind`,
//! `tagpromoter_environments_stalled`, `tagpromoter_environments_not_deployed{state}`,
//! `tagpromoter_last_success_timestamp_seconds{promotion,environment}`,
//! `tagpromoter_last_pass_timestamp_seconds`, `tagpromoter_interval_seconds`, `tagpromoter_registry_requests_total{host,status}`,
//! `tagpromoter_registry_request_duration_seconds{host}`, `tagpromoter_git_pushes_total{repository,result}`,
//! `tagpromoter_alerts_sent_total{sink,result}`, `tagpromoter_webhooks_total{receiver,result}`.

mod parts;

pub use parts::{
    AlertDeliveries, GitPushes, PassFigures, Passes, ROLLOUT_STATES, RegistryRequests, Webhooks,
};

use prometheus_client::registry::Registry;

/// Every series, by part. Clone a part to hand it to what counts.
pub struct Metrics {
    registry: Registry,
    /// Passes of the engine.
    pub passes: Passes,
    /// Requests to registries.
    pub registry_requests: RegistryRequests,
    /// Pushes to the GitOps repository.
    pub git_pushes: GitPushes,
    /// Alert deliveries.
    pub alerts: AlertDeliveries,
    /// Incoming webhooks.
    pub webhooks: Webhooks,
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
        let passes = Passes::register(&mut registry);
        let registry_requests = RegistryRequests::register(&mut registry);
        let git_pushes = GitPushes::register(&mut registry);
        let alerts = AlertDeliveries::register(&mut registry);
        let webhooks = Webhooks::register(&mut registry);
        Self {
            registry,
            passes,
            registry_requests,
            git_pushes,
            alerts,
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
}
