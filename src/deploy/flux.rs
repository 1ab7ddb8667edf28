//! A Flux `Kustomization` (`kustomize.toolkit.fluxcd.io/v1`): `status.lastAppliedRevision`
//! (`main@sha1:<commit>`; `main/<commit>` before Flux 2.0), `status.observedGeneration`, and
//! the `Ready` (and, with health checks, `Healthy`) conditions; and, when the tag is a Helm
//! value, the `HelmRelease` (`helm.toolkit.fluxcd.io/v2`) it applies, which must be `Ready`
//! at its current generation.

use serde_json::Value;

use super::{Rollout, RolloutState, said, text, time};

/// What `kustomization` (and the `helm_release` it applies, if any) report.
pub fn rollout(kustomization: &Value, helm_release: Option<&Value>) -> Rollout {
    let Some(status) = kustomization.get("status").filter(|s| s.is_object()) else {
        return Rollout::unknown("the Kustomization has no status yet");
    };
    let revisions: Vec<String> = text(status, &["lastAppliedRevision"])
        .map(commit_of)
        .map(String::from)
        .into_iter()
        .collect();
    let mut state = readiness(kustomization, "Kustomization", |reason| {
        reason == "HealthCheckFailed"
    });
    if let RolloutState::Healthy { .. } = state
        && let Some(healthy) = condition(kustomization, "Healthy")
        && text(healthy, &["status"]) == Some("False")
    {
        state = RolloutState::Degraded {
            message: said("health checks failed", text(healthy, &["message"])),
        };
    }
    if let (RolloutState::Healthy { since }, Some(release)) = (&state, helm_release) {
        state = match release_state(release) {
            RolloutState::Healthy { since: released } => RolloutState::Healthy {
                since: (*since).max(released),
            },
            other => other,
        };
    }
    Rollout {
        revisions,
        state,
        history: Vec::new(),
        images: Vec::new(),
    }
}

/// How a `HelmRelease` stands on its own: a release Helm installed, upgraded or tested and
/// that failed (or was rolled back after failing) is unhealthy; one waiting for its chart
/// or a dependency is not deployed yet.
pub fn release_state(helm_release: &Value) -> RolloutState {
    let failed = |reason: &str| {
        (reason.ends_with("Failed") && !matches!(reason, "ArtifactFailed" | "InitFailed"))
            || reason == "RollbackSucceeded"
    };
    readiness(helm_release, "HelmRelease", failed)
}

/// The commit of a Flux revision: `main@sha1:<id>`, `sha1:<id>`, or `main/<id>`.
pub fn commit_of(revision: &str) -> &str {
    if let Some((_, id)) = revision.rsplit_once(':') {
        return id;
    }
    revision.rsplit_once('/').map_or(revision, |(_, id)| id)
}

/// How `object`'s `Ready` condition stands at its current generation; a `False` whose
/// reason `unhealthy` accepts is a degraded rollout, any other a pending one.
fn readiness(object: &Value, kind: &str, unhealthy: impl Fn(&str) -> bool) -> RolloutState {
    let generation = object
        .pointer("/metadata/generation")
        .and_then(Value::as_i64);
    let observed = object
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64);
    let Some(ready) = condition(object, "Ready") else {
        return RolloutState::Unknown {
            message: format!("the {kind} reports no Ready condition yet"),
        };
    };
    let ready_at = ready.get("observedGeneration").and_then(Value::as_i64);
    let message = text(ready, &["message"]);
    if generation.is_some()
        && (observed < generation || ready_at.is_some_and(|g| Some(g) < generation))
    {
        return RolloutState::Pending {
            message: format!("the {kind}'s latest spec is not reconciled yet"),
        };
    }
    let reason = text(ready, &["reason"]).unwrap_or_default();
    match text(ready, &["status"]) {
        Some("True") => RolloutState::Healthy {
            since: time(ready, &["lastTransitionTime"]),
        },
        Some("False") if unhealthy(reason) => RolloutState::Degraded {
            message: said(&format!("{kind} not ready ({reason})"), message),
        },
        Some("False") => RolloutState::Pending {
            message: said(&format!("{kind} not ready ({reason})"), message),
        },
        _ => RolloutState::Pending {
            message: said(&format!("{kind} reconciling"), message),
        },
    }
}

/// The condition of `kind` in `object`'s status.
fn condition<'v>(object: &'v Value, kind: &str) -> Option<&'v Value> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| text(c, &["type"]) == Some(kind))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BUMP: &str = "4f5e7c1d2b3a4f5e7c1d2b3a4f5e7c1d2b3a4f5e";

    /// A Kustomization as kustomize-controller writes it, field for field, Ready `ready`
    /// (`reason`) for `revision`.
    fn kustomization(ready: &str, reason: &str, revision: &str) -> Value {
        json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": { "name": "apps", "namespace": "flux-system", "generation": 3, "resourceVersion": "5521" },
            "spec": {
                "interval": "10m",
                "path": "./apps/staging",
                "prune": true,
                "sourceRef": { "kind": "GitRepository", "name": "flux-system" },
                "wait": true
            },
            "status": {
                "observedGeneration": 3,
                "lastAppliedRevision": revision,
                "lastAttemptedRevision": revision,
                "conditions": [
                    {
                        "type": "Ready",
                        "status": ready,
                        "reason": reason,
                        "message": if ready == "True" { format!("Applied revision: {revision}") } else { "Deployment/podinfo/podinfo status: 'Failed'".to_string() },
                        "observedGeneration": 3,
                        "lastTransitionTime": "2026-11-30T10:01:00Z"
                    }
                ],
                "inventory": { "entries": [ { "id": "podinfo_podinfo_apps_Deployment", "v": "v1" } ] }
            }
        })
    }

    /// A HelmRelease as helm-controller writes it, at `generation`, Ready `ready` for
    /// `observed`.
    fn helm_release(ready: &str, generation: i64, observed: i64) -> Value {
        json!({
            "apiVersion": "helm.toolkit.fluxcd.io/v2",
            "kind": "HelmRelease",
            "metadata": { "name": "podinfo", "namespace": "flux-system", "generation": generation },
            "spec": { "interval": "5m", "chart": { "spec": { "chart": "podinfo", "sourceRef": { "kind": "HelmRepository", "name": "podinfo" } } } },
            "status": {
                "observedGeneration": observed,
                "lastAttemptedGeneration": observed,
                "conditions": [
                    {
                        "type": "Ready",
                        "status": ready,
                        "reason": if ready == "True" { "UpgradeSucceeded" } else { "UpgradeFailed" },
                        "message": if ready == "True" { "Helm upgrade succeeded for release podinfo/podinfo.v4 with chart podinfo@6.5.4" } else { "Helm upgrade failed: context deadline exceeded" },
                        "observedGeneration": observed,
                        "lastTransitionTime": "2026-11-30T10:03:00Z"
                    }
                ],
                "history": [ { "chartName": "podinfo", "chartVersion": "6.5.4", "name": "podinfo", "namespace": "podinfo", "status": "deployed", "version": 4 } ]
            }
        })
    }

    fn at(text: &str) -> Option<jiff::Timestamp> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn revisions_of_every_flux_format_are_commits() {
        for written in [
            format!("main@sha1:{BUMP}"),
            format!("sha1:{BUMP}"),
            format!("main/{BUMP}"),
            format!("refs/heads/env/prod@sha1:{BUMP}"),
        ] {
            assert_eq!(commit_of(&written), BUMP, "{written}");
        }
    }

    #[test]
    fn each_ready_condition_reads_as_the_rollout_it_is() {
        let revision = format!("main@sha1:{BUMP}");
        let ready = rollout(
            &kustomization("True", "ReconciliationSucceeded", &revision),
            None,
        );
        assert_eq!(ready.revisions, vec![BUMP.to_string()]);
        assert_eq!(
            ready.state,
            RolloutState::Healthy {
                since: at("2026-11-30T10:01:00Z")
            }
        );
        let unhealthy = rollout(
            &kustomization("False", "HealthCheckFailed", &revision),
            None,
        );
        assert!(
            matches!(&unhealthy.state, RolloutState::Degraded { message } if message.contains("HealthCheckFailed") && message.contains("'Failed'")),
            "{unhealthy:?}"
        );
        let failed = rollout(
            &kustomization("False", "ReconciliationFailed", &revision),
            None,
        );
        assert!(
            matches!(failed.state, RolloutState::Pending { .. }),
            "{failed:?}"
        );
        let busy = rollout(&kustomization("Unknown", "Progressing", &revision), None);
        assert!(
            matches!(busy.state, RolloutState::Pending { .. }),
            "{busy:?}"
        );

        // A spec newer than what was reconciled has not been applied yet.
        let mut stale = kustomization("True", "ReconciliationSucceeded", &revision);
        stale["metadata"]["generation"] = json!(4);
        assert!(matches!(
            rollout(&stale, None).state,
            RolloutState::Pending { .. }
        ));

        let mut checks_failed = kustomization("True", "ReconciliationSucceeded", &revision);
        checks_failed["status"]["conditions"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "type": "Healthy", "status": "False", "reason": "HealthCheckFailed", "message": "timeout waiting for: [Deployment/podinfo/podinfo status: 'InProgress']", "lastTransitionTime": "2026-11-30T10:02:00Z" }));
        assert!(matches!(
            rollout(&checks_failed, None).state,
            RolloutState::Degraded { .. }
        ));

        let mut fresh = kustomization("True", "x", &revision);
        fresh.as_object_mut().unwrap().remove("status");
        assert!(matches!(
            rollout(&fresh, None).state,
            RolloutState::Unknown { .. }
        ));
    }

    #[test]
    fn a_helm_release_must_be_ready_at_its_current_generation() {
        let k = kustomization(
            "True",
            "ReconciliationSucceeded",
            &format!("main@sha1:{BUMP}"),
        );
        assert_eq!(
            rollout(&k, Some(&helm_release("True", 4, 4))).state,
            RolloutState::Healthy {
                since: at("2026-11-30T10:03:00Z")
            },
            "ready from when the later of the two turned ready"
        );
        assert!(matches!(
            rollout(&k, Some(&helm_release("True", 5, 4))).state,
            RolloutState::Pending { .. }
        ));
        assert!(matches!(
            rollout(&k, Some(&helm_release("False", 4, 4))).state,
            RolloutState::Degraded { message } if message.contains("context deadline exceeded")
        ));
        // Waiting for its chart or a dependency is not deployed yet, not unhealthy.
        for reason in ["ArtifactFailed", "DependencyNotReady"] {
            let mut waiting = helm_release("False", 4, 4);
            waiting["status"]["conditions"][0]["reason"] = json!(reason);
            assert!(
                matches!(
                    rollout(&k, Some(&waiting)).state,
                    RolloutState::Pending { .. }
                ),
                "{reason}"
            );
        }
    }
}
