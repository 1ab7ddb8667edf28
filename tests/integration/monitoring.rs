//! `deploy/monitoring/`: the PrometheusRule's alerts pass `promtool check rules` and the
//! unit tests in `tests.yaml` (`promtool test rules`), and every series the Grafana
//! dashboard and the rules query is one tagpromoter exports.

use std::path::PathBuf;
use std::process::Command;

use crate::support::require;

fn monitoring() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/monitoring")
}

/// The rule groups of the PrometheusRule, as a plain Prometheus rules file.
fn plain_rules() -> String {
    let text = std::fs::read_to_string(monitoring().join("prometheusrule.yaml")).unwrap();
    let (_, spec) = text.split_once("\nspec:\n").expect("a spec");
    spec.lines()
        .map(|l| l.strip_prefix("  ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_prometheus_rules_pass_promtool_and_their_unit_tests() {
    let promtool = require("promtool");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), plain_rules()).unwrap();
    std::fs::copy(
        monitoring().join("tests.yaml"),
        dir.path().join("tests.yaml"),
    )
    .unwrap();
    for args in [
        ["check", "rules", "rules.yaml"],
        ["test", "rules", "tests.yaml"],
    ] {
        let out = Command::new(&promtool)
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_dashboard_and_rules_query_only_series_tagpromoter_exports() {
    let metrics = tagpromoter::metrics::Metrics::new();
    // Families keyed by a host, a sink or an environment appear with their first member.
    metrics.registry_requests.request(
        "registry.example",
        "200",
        std::time::Duration::from_millis(3),
    );
    metrics.alerts.sent("webhook", "ok");
    metrics.webhooks.received("distribution", "accepted");
    metrics.passes.environment_succeeded("app", "prod", 0.0);
    let exported = metrics.encode_classic();
    let names: Vec<String> = exported
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect();
    assert!(names.len() >= 10, "{exported}");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(monitoring().join("dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect();
    assert!(exprs.len() >= 10);
    exprs.extend(
        plain_rules()
            .lines()
            .filter_map(|l| l.trim().strip_prefix("expr:").map(str::to_string)),
    );
    for expr in &exprs {
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if let Some(base) = word.strip_prefix("tagpromoter_") {
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .fold(format!("tagpromoter_{base}"), |n, s| {
                        n.strip_suffix(s).map(str::to_string).unwrap_or(n)
                    });
                assert!(
                    names.contains(&family),
                    "{word} (in {expr}) is not exported; exported: {names:?}"
                );
            }
        }
    }
}
