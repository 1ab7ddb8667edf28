//! An Argo CD `Application` (`argoproj.io/v1alpha1`): `status.sync` (status, and the
//! revision, or one revision per source for a multi-source application), `status.health`,
//! `status.operationState` (the last sync operation) and `status.history` (when each
//! revision was deployed), `status.health.lastTransitionTime` (when its health last turned,
//! Argo CD 2.11 on) and `status.summary.images` (what the deployed objects run).

use serde_json::Value;

use super::{Deployed, Rollout, RolloutState, said, text, time};

/// What `application` reports about its rollout.
pub fn rollout(application: &Value) -> Rollout {
    let Some(status) = application.get("status").filter(|s| s.is_object()) else {
        return Rollout::unknown("the Application has no status yet");
    };
    let revisions = revisions(status.get("sync"));
    let sync = text(status, &["sync", "status"]).unwrap_or("Unknown");
    let health = text(status, &["health", "status"]).unwrap_or("Unknown");
    let health_message = text(status, &["health", "message"]);
    let phase = text(status, &["operationState", "phase"]);
    let operation_message = text(status, &["operationState", "message"]);
    let state = match (phase, sync, health) {
        (_, _, "Degraded") => RolloutState::Degraded {
            message: said("health Degraded", health_message.or(operation_message)),
        },
        // A sync that failed, or is still running, has not deployed it.
        (Some(p @ ("Failed" | "Error" | "Running" | "Terminating")), _, _) => {
            RolloutState::Pending {
                message: said(&format!("sync {p}"), operation_message),
            }
        }
        // Healthy since it was deployed, or since its health last turned, whichever is
        // later: time spent Degraded before (or between) does not count.
        (_, "Synced", "Healthy") => RolloutState::Healthy {
            since: deployed_at(status, &revisions)
                .max(time(status, &["health", "lastTransitionTime"])),
        },
        (_, "Unknown", _) | (_, _, "Unknown") => RolloutState::Unknown {
            message: said(&format!("sync {sync}, health {health}"), health_message),
        },
        _ => RolloutState::Pending {
            message: said(&format!("sync {sync}, health {health}"), health_message),
        },
    };
    Rollout {
        revisions,
        state,
        history: history(status),
        images: status
            .get("summary")
            .and_then(|s| s.get("images"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
    }
}

/// `status.history`: each deployment with its revisions and `deployedAt`, oldest first.
fn history(status: &Value) -> Vec<Deployed> {
    let mut history: Vec<Deployed> = status
        .get("history")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            Some(Deployed {
                revisions: revisions(Some(entry)),
                at: time(entry, &["deployedAt"])?,
            })
        })
        .collect();
    history.sort_by_key(|d| d.at);
    history
}

/// The revisions of a `sync` (or history, or sync result) entry: `revisions` for a
/// multi-source application, else `revision`.
fn revisions(entry: Option<&Value>) -> Vec<String> {
    let Some(entry) = entry else {
        return Vec::new();
    };
    match entry.get("revisions").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => list
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        _ => text(entry, &["revision"])
            .map(String::from)
            .into_iter()
            .collect(),
    }
}

/// When `running` were deployed: the newest history entry for them, else the last sync
/// operation's end when it succeeded with them.
fn deployed_at(status: &Value, running: &[String]) -> Option<jiff::Timestamp> {
    let history = status.get("history").and_then(Value::as_array);
    let from_history = history.into_iter().flatten().rev().find_map(|entry| {
        (revisions(Some(entry)) == running)
            .then(|| time(entry, &["deployedAt"]))
            .flatten()
    });
    from_history.or_else(|| {
        let operation = status.get("operationState")?;
        let succeeded = text(operation, &["phase"]) == Some("Succeeded");
        (succeeded && revisions(operation.get("syncResult")) == running)
            .then(|| time(operation, &["finishedAt"]))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BUMP: &str = "4f5e7c1d2b3a4f5e7c1d2b3a4f5e7c1d2b3a4f5e";
    const OLDER: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567";

    /// An Application as Argo CD writes it, field for field (argoproj.io/v1alpha1), synced to
    /// `revision` and `health`, its last operation in `phase`.
    fn application(sync: &str, health: &str, phase: &str, revision: &str) -> Value {
        json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": { "name": "podinfo-staging", "namespace": "argocd", "generation": 7, "resourceVersion": "81233" },
            "spec": {
                "project": "default",
                "source": { "repoURL": "https://git.example.com/platform/gitops.git", "targetRevision": "main", "path": "apps/podinfo/staging" },
                "destination": { "server": "https://kubernetes.default.svc", "namespace": "podinfo" },
                "syncPolicy": { "automated": { "prune": true, "selfHeal": true } }
            },
            "status": {
                "sync": {
                    "status": sync,
                    "revision": revision,
                    "comparedTo": { "source": { "repoURL": "https://git.example.com/platform/gitops.git", "targetRevision": "main", "path": "apps/podinfo/staging" } }
                },
                "health": { "status": health },
                "operationState": {
                    "operation": { "sync": { "revision": revision } },
                    "phase": phase,
                    "message": if phase == "Failed" { "one or more objects failed to apply, reason: admission webhook denied the request" } else { "successfully synced (all tasks run)" },
                    "startedAt": "2026-11-30T10:00:00Z",
                    "finishedAt": "2026-11-30T10:00:20Z",
                    "syncResult": { "revision": revision, "resources": [] }
                },
                "history": [
                    { "id": 3, "revision": OLDER, "deployStartedAt": "2026-11-29T09:00:00Z", "deployedAt": "2026-11-29T09:00:15Z" },
                    { "id": 4, "revision": revision, "deployStartedAt": "2026-11-30T10:00:00Z", "deployedAt": "2026-11-30T10:00:18Z" }
                ],
                "reconciledAt": "2026-11-30T10:05:00Z",
                "sourceType": "Kustomize"
            }
        })
    }

    fn at(text: &str) -> Option<jiff::Timestamp> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn each_status_reads_as_the_rollout_it_is() {
        type Expect = fn(&RolloutState) -> bool;
        let rows: [(&str, &str, &str, Expect); 8] = [
            ("Synced", "Healthy", "Succeeded", |s| {
                *s == RolloutState::Healthy {
                    since: at("2026-11-30T10:00:18Z"),
                }
            }),
            (
                "Synced",
                "Progressing",
                "Succeeded",
                |s| matches!(s, RolloutState::Pending { message } if message == "sync Synced, health Progressing"),
            ),
            (
                "OutOfSync",
                "Healthy",
                "Succeeded",
                |s| matches!(s, RolloutState::Pending { message } if message.starts_with("sync OutOfSync")),
            ),
            (
                "Synced",
                "Degraded",
                "Succeeded",
                |s| matches!(s, RolloutState::Degraded { message } if message.starts_with("health Degraded")),
            ),
            (
                "OutOfSync",
                "Healthy",
                "Failed",
                |s| matches!(s, RolloutState::Pending { message } if message.contains("admission webhook denied")),
            ),
            (
                "OutOfSync",
                "Progressing",
                "Running",
                |s| matches!(s, RolloutState::Pending { message } if message.starts_with("sync Running")),
            ),
            ("Unknown", "Healthy", "Succeeded", |s| {
                matches!(s, RolloutState::Unknown { .. })
            }),
            (
                "Synced",
                "Suspended",
                "Succeeded",
                |s| matches!(s, RolloutState::Pending { message } if message.contains("Suspended")),
            ),
        ];
        for (sync, health, phase, expect) in rows {
            let r = rollout(&application(sync, health, phase, BUMP));
            assert_eq!(
                r.revisions,
                vec![BUMP.to_string()],
                "{sync}/{health}/{phase}"
            );
            assert!(expect(&r.state), "{sync}/{health}/{phase}: {:?}", r.state);
        }
    }

    #[test]
    fn a_multi_source_application_lists_a_revision_per_source_and_its_deploy_time() {
        let mut app = application("Synced", "Healthy", "Succeeded", BUMP);
        let status = &mut app["status"];
        status["sync"] = json!({
            "status": "Synced",
            "revisions": [BUMP, "6.5.4"],
            "comparedTo": { "sources": [
                { "repoURL": "https://git.example.com/platform/gitops.git", "targetRevision": "main", "ref": "values" },
                { "repoURL": "https://stefanprodan.github.io/podinfo", "chart": "podinfo", "targetRevision": "6.5.4", "helm": { "valueFiles": ["$values/apps/podinfo/staging/values.yaml"] } }
            ] }
        });
        status["history"] = json!([
            { "id": 9, "revisions": [BUMP, "6.5.4"], "deployStartedAt": "2026-11-30T11:00:00Z", "deployedAt": "2026-11-30T11:00:30Z" }
        ]);
        let r = rollout(&app);
        assert_eq!(r.revisions, vec![BUMP.to_string(), "6.5.4".to_string()]);
        assert_eq!(
            r.state,
            RolloutState::Healthy {
                since: at("2026-11-30T11:00:30Z")
            }
        );
    }

    /// Every remembered rollout is listed, oldest first, with its revisions; an entry that
    /// does not say when it was deployed is left out.
    #[test]
    fn the_history_lists_each_rollout_oldest_first() {
        let mut app = application("Synced", "Healthy", "Succeeded", BUMP);
        app["status"]["history"] = json!([
            { "id": 3, "revision": BUMP, "deployStartedAt": "2026-11-30T11:00:00Z", "deployedAt": "2026-11-30T11:00:30Z" },
            { "id": 1, "revision": OLDER, "deployStartedAt": "2026-11-29T08:00:00Z", "deployedAt": "2026-11-29T08:01:00Z" },
            { "id": 2, "revision": OLDER, "deployStartedAt": "2026-11-29T09:00:00Z" }
        ]);
        let history: Vec<(Vec<String>, Option<jiff::Timestamp>)> = rollout(&app)
            .history
            .into_iter()
            .map(|d| (d.revisions, Some(d.at)))
            .collect();
        assert_eq!(
            history,
            vec![
                (vec![OLDER.to_string()], at("2026-11-29T08:01:00Z")),
                (vec![BUMP.to_string()], at("2026-11-30T11:00:30Z")),
            ]
        );
    }

    #[test]
    fn without_a_history_entry_the_successful_sync_says_when() {
        let mut app = application("Synced", "Healthy", "Succeeded", BUMP);
        app["status"]["history"] = json!([]);
        let r = rollout(&app);
        assert_eq!(
            r.state,
            RolloutState::Healthy {
                since: at("2026-11-30T10:00:20Z")
            }
        );
        // A history and an operation about another revision say nothing of this one.
        app["status"]["operationState"]["syncResult"]["revision"] = json!(OLDER);
        assert_eq!(rollout(&app).state, RolloutState::Healthy { since: None });
    }

    /// Healthy since the later of its deployment and its health's last turn: a rollout
    /// that was Degraded after it deployed has been healthy only since it recovered.
    #[test]
    fn healthy_counts_from_the_health_turn_when_it_is_later() {
        let mut app = application("Synced", "Healthy", "Succeeded", BUMP);
        app["status"]["health"]["lastTransitionTime"] = json!("2026-11-30T12:00:00Z");
        assert_eq!(
            rollout(&app).state,
            RolloutState::Healthy {
                since: at("2026-11-30T12:00:00Z")
            }
        );
        // A turn before the deployment (healthy all along) leaves the deployment's time.
        app["status"]["health"]["lastTransitionTime"] = json!("2026-11-01T00:00:00Z");
        assert_eq!(
            rollout(&app).state,
            RolloutState::Healthy {
                since: at("2026-11-30T10:00:18Z")
            }
        );
    }

    #[test]
    fn an_application_without_status_is_unknown() {
        let mut app = application("Synced", "Healthy", "Succeeded", BUMP);
        app.as_object_mut().unwrap().remove("status");
        assert!(matches!(rollout(&app).state, RolloutState::Unknown { .. }));
    }
}
