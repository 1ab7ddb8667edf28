//! What each sender's payload says happened, as hints: a tag pushed to an image, or a branch
//! of a Git repository moved. Pure: headers and body in, hints out. A hint is never trusted
//! beyond "look now" — the pass it triggers lists the tags from the registry itself.

use axum::http::HeaderMap;
use serde_json::Value;

use crate::image::{ImageRef, Repository};
use crate::rules::ReceiverKind;

/// What a webhook says happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// A tag (when the sender names one) was pushed to the repository `path`, on `host`
    /// when the sender says which registry.
    Pushed {
        /// The registry host.
        host: Option<String>,
        /// The repository path (`acme/app`).
        path: String,
        /// The tag.
        tag: Option<String>,
    },
    /// A branch of a Git repository moved.
    Branch {
        /// The repository (`owner/name` or a URL).
        repository: String,
        /// The branch (without `refs/heads/`).
        branch: String,
    },
}

/// The hints in a payload to the receiver of `kind`; empty when it tells of nothing that
/// could matter (a blob upload, a ping, a deletion). `Err` when the body is not such a payload.
pub fn hints(kind: ReceiverKind, headers: &HeaderMap, body: &[u8]) -> Result<Vec<Hint>, String> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON ({e})"))?;
    let event = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    match kind {
        ReceiverKind::Distribution => distribution(&doc),
        ReceiverKind::Dockerhub => Ok(pushed(
            Some("docker.io"),
            text(&doc, &["repository", "repo_name"]).ok_or("no repository.repo_name")?,
            text(&doc, &["push_data", "tag"]),
        )),
        ReceiverKind::Github => github(&event("x-github-event"), &doc),
        ReceiverKind::Gitea => gitea(&event("x-gitea-event"), &doc),
        ReceiverKind::Gitlab => Ok(match event("x-gitlab-event").as_str() {
            "Push Hook" => branch(text(&doc, &["project", "path_with_namespace"]), &doc),
            _ => Vec::new(),
        }),
        ReceiverKind::Harbor => harbor(&doc),
        ReceiverKind::Quay => quay(&doc),
        ReceiverKind::Generic => {
            let image = text(&doc, &["image"]).ok_or("no \"image\"")?;
            let image = Repository::new(image).map_err(|e| e.to_string())?;
            Ok(pushed(image.host(), &image.split().1, text(&doc, &["tag"])))
        }
    }
}

/// The sender's id of this delivery, where it gives one: GitHub's `X-GitHub-Delivery`,
/// Gitea's `X-Gitea-Delivery`, GitLab's `X-Gitlab-Event-UUID`, distribution's event ids. A
/// delivery seen before is a replay.
pub fn delivery(kind: ReceiverKind, headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    match kind {
        ReceiverKind::Github => header("x-github-delivery"),
        ReceiverKind::Gitea => header("x-gitea-delivery"),
        ReceiverKind::Gitlab => header("x-gitlab-event-uuid"),
        ReceiverKind::Distribution => {
            let doc: Value = serde_json::from_slice(body).ok()?;
            let mut ids: Vec<&str> = doc
                .get("events")?
                .as_array()?
                .iter()
                .filter_map(|e| text(e, &["id"]))
                .collect();
            ids.sort_unstable();
            (!ids.is_empty()).then(|| ids.join(","))
        }
        _ => None,
    }
}

/// The registry host an image reference (`host/path[:tag]`) names, if it names one.
fn host_of(reference: &str) -> Option<String> {
    let reference = reference
        .split_once("://")
        .map_or(reference, |(_, rest)| rest);
    ImageRef::parse(reference)
        .ok()?
        .repository
        .host()
        .map(str::to_string)
}

fn text<'a>(doc: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(doc, |v, key| v.get(key))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn pushed(host: Option<&str>, path: &str, tag: Option<&str>) -> Vec<Hint> {
    vec![Hint::Pushed {
        host: host.map(str::to_string),
        path: path.trim_matches('/').to_ascii_lowercase(),
        tag: tag.map(str::to_string),
    }]
}

/// A push event's branch (`ref: refs/heads/<branch>`); tags and other refs tell nothing.
fn branch(repository: Option<&str>, doc: &Value) -> Vec<Hint> {
    match (
        repository,
        text(doc, &["ref"]).and_then(|r| r.strip_prefix("refs/heads/")),
    ) {
        (Some(repository), Some(branch)) => vec![Hint::Branch {
            repository: repository.to_string(),
            branch: branch.to_string(),
        }],
        _ => Vec::new(),
    }
}

/// `{"events": [{"action": "push", "target": {"repository", "tag"}}]}`; blob pushes and
/// pushes by digest carry no tag and tell nothing.
fn distribution(doc: &Value) -> Result<Vec<Hint>, String> {
    let events = doc
        .get("events")
        .and_then(Value::as_array)
        .ok_or("no \"events\" list")?;
    Ok(events
        .iter()
        .filter(|e| text(e, &["action"]) == Some("push"))
        .filter_map(|e| {
            let tag = text(e, &["target", "tag"])?;
            let path = text(e, &["target", "repository"])?;
            Some(pushed(None, path, Some(tag)))
        })
        .flatten()
        .collect())
}

/// `package` and `registry_package` (container packages on ghcr.io), and `push`.
fn github(event: &str, doc: &Value) -> Result<Vec<Hint>, String> {
    let package = match event {
        "push" => return Ok(branch(text(doc, &["repository", "full_name"]), doc)),
        "package" => doc.get("package"),
        "registry_package" => doc.get("registry_package"),
        _ => return Ok(Vec::new()),
    }
    .ok_or_else(|| format!("a {event} event without its package"))?;
    let container =
        text(package, &["package_type"]).is_some_and(|t| t.eq_ignore_ascii_case("container"));
    if !container {
        return Ok(Vec::new());
    }
    let owner = text(package, &["namespace"])
        .or_else(|| text(package, &["owner", "login"]))
        .ok_or("a package without namespace or owner")?;
    let name = text(package, &["name"]).ok_or("a package without a name")?;
    let host = text(package, &["registry", "url"])
        .and_then(host_of)
        .unwrap_or_else(|| "ghcr.io".into());
    let tag = text(
        package,
        &["package_version", "container_metadata", "tag", "name"],
    );
    Ok(pushed(Some(&host), &format!("{owner}/{name}"), tag))
}

/// Gitea and Forgejo: `package` (container packages) and `push`.
fn gitea(event: &str, doc: &Value) -> Result<Vec<Hint>, String> {
    match event {
        "push" => Ok(branch(text(doc, &["repository", "full_name"]), doc)),
        "package" => {
            if text(doc, &["package", "type"]) != Some("container") {
                return Ok(Vec::new());
            }
            let owner =
                text(doc, &["package", "owner", "login"]).ok_or("a package without an owner")?;
            let name = text(doc, &["package", "name"]).ok_or("a package without a name")?;
            Ok(pushed(
                None,
                &format!("{owner}/{name}"),
                text(doc, &["package", "version"]),
            ))
        }
        _ => Ok(Vec::new()),
    }
}

/// `{"type": "PUSH_ARTIFACT", "event_data": {"resources": [{"tag", "resource_url"}],
/// "repository": {"repo_full_name"}}}`.
fn harbor(doc: &Value) -> Result<Vec<Hint>, String> {
    if !matches!(text(doc, &["type"]), Some("PUSH_ARTIFACT" | "pushImage")) {
        return Ok(Vec::new());
    }
    let path = text(doc, &["event_data", "repository", "repo_full_name"])
        .ok_or("no event_data.repository.repo_full_name")?;
    let resources = doc
        .pointer("/event_data/resources")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let host = resources
        .iter()
        .find_map(|r| text(r, &["resource_url"]))
        .and_then(host_of);
    let mut out: Vec<Hint> = resources
        .iter()
        .flat_map(|r| pushed(host.as_deref(), path, text(r, &["tag"])))
        .collect();
    if out.is_empty() {
        out = pushed(host.as_deref(), path, None);
    }
    Ok(out)
}

/// A `repo_push` notification: `{"repository", "docker_url", "updated_tags": [...]}`.
fn quay(doc: &Value) -> Result<Vec<Hint>, String> {
    let path = text(doc, &["repository"]).ok_or("no \"repository\"")?;
    let host = text(doc, &["docker_url"]).and_then(host_of);
    let tags: Vec<&str> = doc
        .get("updated_tags")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if tags.is_empty() {
        return Ok(pushed(host.as_deref(), path, None));
    }
    Ok(tags
        .iter()
        .flat_map(|t| pushed(host.as_deref(), path, Some(t)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(kind: ReceiverKind, event: Option<(&'static str, &str)>, body: &str) -> Vec<Hint> {
        let mut h = HeaderMap::new();
        if let Some((k, v)) = event {
            h.insert(k, v.parse().unwrap());
        }
        hints(kind, &h, body.as_bytes()).unwrap()
    }

    fn image(host: Option<&str>, path: &str, tag: &str) -> Hint {
        Hint::Pushed {
            host: host.map(str::to_string),
            path: path.into(),
            tag: Some(tag.into()),
        }
    }

    #[test]
    fn distribution_hints_tagged_manifest_pushes_only() {
        let body = r#"{"events":[
            {"action":"push","target":{"mediaType":"application/octet-stream","repository":"acme/app","digest":"sha256:aa"}},
            {"action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"acme/app","tag":"1.2.0"}},
            {"action":"pull","target":{"repository":"acme/app","tag":"1.1.0"}}]}"#;
        assert_eq!(
            one(ReceiverKind::Distribution, None, body),
            vec![image(None, "acme/app", "1.2.0")]
        );
    }

    #[test]
    fn each_registry_names_its_image_and_tag() {
        assert_eq!(
            one(
                ReceiverKind::Dockerhub,
                None,
                r#"{"push_data":{"tag":"v2"},"repository":{"repo_name":"acme/app"}}"#
            ),
            vec![image(Some("docker.io"), "acme/app", "v2")]
        );
        assert_eq!(
            one(
                ReceiverKind::Github,
                Some(("x-github-event", "package")),
                r#"{"action":"published","package":{"name":"App","package_type":"CONTAINER","namespace":"Acme","package_version":{"container_metadata":{"tag":{"name":"1.0.1"}}}}}"#
            ),
            vec![image(Some("ghcr.io"), "acme/app", "1.0.1")]
        );
        assert_eq!(
            one(
                ReceiverKind::Github,
                Some(("x-github-event", "registry_package")),
                r#"{"registry_package":{"name":"app","package_type":"CONTAINER","owner":{"login":"acme"},"registry":{"url":"https://ghcr.io/acme"},"package_version":{"container_metadata":{"tag":{"name":"2.0.0"}}}}}"#
            ),
            vec![image(Some("ghcr.io"), "acme/app", "2.0.0")]
        );
        assert_eq!(
            one(
                ReceiverKind::Harbor,
                None,
                r#"{"type":"PUSH_ARTIFACT","event_data":{"resources":[{"tag":"v1","resource_url":"harbor.example.com/lib/app:v1"}],"repository":{"repo_full_name":"lib/app"}}}"#
            ),
            vec![image(Some("harbor.example.com"), "lib/app", "v1")]
        );
        assert_eq!(
            one(
                ReceiverKind::Quay,
                None,
                r#"{"repository":"ns/app","docker_url":"quay.io/ns/app","updated_tags":["1.0"]}"#
            ),
            vec![image(Some("quay.io"), "ns/app", "1.0")]
        );
        assert_eq!(
            one(
                ReceiverKind::Gitea,
                Some(("x-gitea-event", "package")),
                r#"{"package":{"type":"container","name":"app","version":"3.0.0","owner":{"login":"acme"}}}"#
            ),
            vec![image(None, "acme/app", "3.0.0")]
        );
        assert_eq!(
            one(
                ReceiverKind::Generic,
                None,
                r#"{"image":"registry.local:5000/acme/app","tag":"1.0.0"}"#
            ),
            vec![image(Some("registry.local:5000"), "acme/app", "1.0.0")]
        );
    }

    #[test]
    fn forges_hint_pushes_to_branches() {
        let branch = |repository: &str| Hint::Branch {
            repository: repository.into(),
            branch: "main".into(),
        };
        assert_eq!(
            one(
                ReceiverKind::Github,
                Some(("x-github-event", "push")),
                r#"{"ref":"refs/heads/main","repository":{"full_name":"acme/deploys"}}"#
            ),
            vec![branch("acme/deploys")]
        );
        assert_eq!(
            one(
                ReceiverKind::Gitlab,
                Some(("x-gitlab-event", "Push Hook")),
                r#"{"ref":"refs/heads/main","project":{"path_with_namespace":"acme/deploys"}}"#
            ),
            vec![branch("acme/deploys")]
        );
        assert_eq!(
            one(
                ReceiverKind::Gitea,
                Some(("x-gitea-event", "push")),
                r#"{"ref":"refs/tags/v1","repository":{"full_name":"acme/deploys"}}"#
            ),
            vec![]
        );
        assert_eq!(
            one(
                ReceiverKind::Github,
                Some(("x-github-event", "ping")),
                r#"{"zen":"hi"}"#
            ),
            vec![]
        );
    }

    #[test]
    fn a_body_that_is_not_the_senders_payload_is_an_error() {
        let h = HeaderMap::new();
        assert!(hints(ReceiverKind::Distribution, &h, b"not json").is_err());
        assert!(hints(ReceiverKind::Distribution, &h, b"{}").is_err());
        assert!(hints(ReceiverKind::Generic, &h, br#"{"tag":"1"}"#).is_err());
        let bad = hints(ReceiverKind::Generic, &h, br#"{"image":"Acme App"}"#).unwrap_err();
        assert!(
            bad.contains("repository"),
            "says what a name must be: {bad}"
        );
    }
}
