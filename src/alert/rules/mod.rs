//! Detection: one alert per file, each a function of (the pass's report, what earlier
//! passes left in [`Memory`], the settings, now) returning the alerts of its kind that fire.

mod failed;
mod held;
mod registry_unavailable;
mod stalled;
mod unhealthy;

use jiff::Timestamp;

use super::Alert;
use super::state::Memory;
use crate::engine::PassReport;
use crate::rules::Settings;

/// What a rule sees.
pub struct Context<'a> {
    /// This pass.
    pub report: &'a PassReport,
    /// What earlier passes left (consecutive registry failures, first-seen times).
    pub memory: &'a Memory,
    /// The settings (`alerts.holdAlertAfter`).
    pub settings: &'a Settings,
    /// The time.
    pub now: Timestamp,
}

/// A detection rule.
type Rule = fn(&Context<'_>) -> Vec<Alert>;

/// Every rule, in one list.
const RULES: [Rule; 5] = [
    failed::check,
    stalled::check,
    registry_unavailable::check,
    held::check,
    unhealthy::check,
];

/// Every alert that fires after this pass.
pub fn firing(cx: &Context<'_>) -> Vec<Alert> {
    RULES.iter().flat_map(|rule| rule(cx)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Applied;
    use crate::engine::fixtures::{Step, World, at, rules};
    use crate::gitops::{GitError, GitErrorKind};

    const PROD: &str = "    - name: prod\n      policy: { semver: '^1.0.0' }\n      target: { helm: { file: apps/prod.yaml, tag: image.tag } }\n";
    const PINNED: &str = "    - name: prod\n      policy: { semver: '^1.0.0' }\n      pinDigest: true\n      target: { helm: { file: apps/prod.yaml, tag: image.tag, digest: image.digest } }\n";
    const CHAIN: &str = "    - name: staging\n      policy: { semver: '^1.0.0' }\n      target: { helm: { file: apps/staging.yaml, tag: image.tag } }\n    - name: prod\n      from: staging\n      soak: 1h\n      policy: { semver: '^1.0.0' }\n      target: { helm: { file: apps/prod.yaml, tag: image.tag } }\n";
    const SKIPPING: &str = "    - name: staging\n      policy: { semver: '^1.0.0' }\n      target: { helm: { file: apps/staging.yaml, tag: image.tag } }\n    - name: prod\n      from: staging\n      soak: 1h\n      policy: { semver: '~1.1.0' }\n      target: { helm: { file: apps/prod.yaml, tag: image.tag } }\n";
    const NEWEST: &str = "    - name: prod\n      policy: { newestBuild: {} }\n      target: { helm: { file: apps/prod.yaml, tag: image.tag } }\n";

    const VERIFIED: &str = "    - name: prod\n      policy: { semver: '^1.0.0' }\n      target: { helm: { file: apps/prod.yaml, tag: image.tag } }\n      verify: { argocd: { application: app-prod }, deployTimeout: 30m }\n";

    /// With `verify:`, one row per way a rollout stands: the state it shows and the alerts
    /// that fire. A rollout late past `deployTimeout` (or one that cannot be read) stalls
    /// with class `not deployed`; an unhealthy one raises `DeploymentUnhealthy` at once.
    #[test]
    fn a_rollout_late_unhealthy_or_unknown_shows_and_raises_its_alert() {
        use crate::engine::verify::Deployment;
        let deploying = || Deployment::Deploying {
            message: "sync OutOfSync, health Healthy".into(),
        };
        let unknown = || Deployment::Unknown {
            message: "forbidden: grant get, list and watch on applications".into(),
        };
        let minutes = |m: i64| at(0) + jiff::SignedDuration::from_mins(m);
        // (case, deployment, minutes after the value landed, state, alerts).
        let rows: Vec<(&str, Deployment, i64, &str, Vec<&str>)> = vec![
            (
                "deployed",
                Deployment::Deployed { since: minutes(5) },
                60,
                "up-to-date",
                vec![],
            ),
            ("deploying, in time", deploying(), 20, "deploying", vec![]),
            (
                "deploying past deployTimeout",
                deploying(),
                31,
                "deploying",
                vec!["PromotionStalled/not deployed"],
            ),
            (
                "unhealthy",
                Deployment::Unhealthy {
                    message: "health Degraded".into(),
                },
                1,
                "unhealthy",
                vec!["DeploymentUnhealthy/unhealthy"],
            ),
            ("unknown, in time", unknown(), 10, "unknown", vec![]),
            (
                "unknown past deployTimeout",
                unknown(),
                45,
                "unknown",
                vec!["PromotionStalled/not deployed"],
            ),
        ];
        let settings = rules(VERIFIED).settings;
        for (case, deployment, after, state, expected) in rows {
            let world = World::new(rules(VERIFIED), "1.1.0")
                .tags(&[("1.0.0", 0), ("1.1.0", 0)])
                .deployment("prod", deployment);
            let now = minutes(after);
            let report = world.report(now, &[]);
            assert_eq!(report.environments[0].state(now).name(), state, "{case}");
            let memory = Memory::default();
            let cx = Context {
                report: &report,
                memory: &memory,
                settings: &settings,
                now,
            };
            let fired: Vec<String> = firing(&cx)
                .iter()
                .map(|a| format!("{}/{}", a.name.as_str(), a.class.as_deref().unwrap_or("-")))
                .collect();
            assert_eq!(fired, expected, "{case}");
            for alert in firing(&cx) {
                let error = alert.error.unwrap_or_default();
                assert!(
                    error.starts_with("Argo CD Application argocd/app-prod"),
                    "{case}: {error}"
                );
            }
        }
    }

    fn tags(w: World) -> World {
        w.tags(&[("1.0.0", 0), ("1.1.0", 2)])
    }

    /// One row per state an environment can be in after a pass: which alerts fire for it,
    /// as `name/class`. Nothing stops in silence: every failure of deciding or writing
    /// raises `PromotionFailed` with its class.
    #[test]
    fn every_failing_or_waiting_state_raises_its_alert() {
        let rejected = Applied::Failed(
            GitError::new(GitErrorKind::Rejected, "pushing", "prod is protected").into(),
        );
        /// (case, world, what writing did, hour of the pass, alerts that fire).
        type Row = (
            &'static str,
            World,
            Vec<(&'static str, Applied)>,
            i64,
            Vec<&'static str>,
        );
        let rows: Vec<Row> = vec![
            (
                "up to date",
                tags(World::new(rules(PROD), "1.1.0")),
                vec![],
                100,
                vec![],
            ),
            (
                "a push refused by a hook",
                tags(World::new(rules(PROD), "1.0.0")),
                vec![("prod", rejected)],
                2,
                vec!["PromotionFailed/rejected"],
            ),
            (
                "an eligible tag waiting past stallAfter",
                tags(World::new(rules(PROD), "1.0.0")),
                vec![],
                100,
                vec!["PromotionStalled/-"],
            ),
            (
                "a history that cannot be read back far enough",
                tags(World::new(rules(PROD), "1.0.0")).history("prod", "1.0.0", false, &[]),
                vec![],
                100,
                vec!["PromotionFailed/history"],
            ),
            (
                "newestBuild cannot order what runs",
                World::new(rules(NEWEST), "b0")
                    .tags(&[("b1", 1), ("b2", 2)])
                    .history(
                        "prod",
                        "b0",
                        true,
                        &[Step::Bot {
                            at: at(10),
                            to: "b1",
                        }],
                    )
                    .uninspected("b1"),
                vec![],
                100,
                vec!["PromotionFailed/facts"],
            ),
            (
                "pinDigest without the winner's digest",
                tags(World::new(rules(PINNED), "1.0.0")).uninspected("1.1.0"),
                vec![],
                2,
                vec!["PromotionFailed/facts"],
            ),
            (
                "the forge cannot say when upstream's pull requests merged",
                tags(World::new(rules(CHAIN), "1.1.0"))
                    .history("prod", "1.0.0", true, &[])
                    .merges_unknown("staging"),
                vec![],
                100,
                vec!["PromotionFailed/forge"],
            ),
            (
                "a release the upstream skipped, past stallAfter",
                World::new(rules(SKIPPING), "1.0.0")
                    .tags(&[("1.0.0", 0), ("1.1.0", 1), ("1.2.0", 2)])
                    .history(
                        "staging",
                        "1.0.0",
                        true,
                        &[Step::Bot {
                            at: at(10),
                            to: "1.2.0",
                        }],
                    ),
                vec![],
                100,
                vec!["PromotionStalled/-"],
            ),
            (
                "held for longer than holdAlertAfter",
                tags(World::new(rules(PROD), "1.1.0")).history(
                    "prod",
                    "1.1.0",
                    true,
                    &[Step::Hand {
                        at: at(10),
                        to: "1.0.0",
                    }],
                ),
                vec![],
                100,
                vec!["PromotionHeld/-"],
            ),
            (
                "a hold released just now starts the stall clock now",
                tags(World::new(rules(PROD), "1.1.0")).history(
                    "prod",
                    "1.1.0",
                    true,
                    &[
                        Step::Hand {
                            at: at(10),
                            to: "1.0.0",
                        },
                        Step::Release { at: at(100) },
                    ],
                ),
                vec![],
                100,
                vec![],
            ),
        ];
        let settings = rules(PROD).settings;
        for (case, world, applied, hour, expected) in rows {
            let report = world.report(at(hour), &applied);
            let memory = Memory::default();
            let cx = Context {
                report: &report,
                memory: &memory,
                settings: &settings,
                now: at(hour),
            };
            let fired: Vec<String> = firing(&cx)
                .iter()
                .map(|a| format!("{}/{}", a.name.as_str(), a.class.as_deref().unwrap_or("-")))
                .collect();
            assert_eq!(fired, expected, "{case}");
        }
    }
}
