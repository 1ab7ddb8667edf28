//! Image metadata, fetched only for the candidates a policy needs: the digest of a tag (a
//! HEAD), and, by digest, the platforms of an index and the `created` time of an image's
//! config. Everything fetched by digest is verified against it, so it can be cached forever.

use jiff::Timestamp;
use reqwest::Method;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::error::{ErrorKind, RegistryError};
use super::transport::{Request, Transport};
use crate::image::{Depth, Digest, ImageFacts, Tag};

/// The media types asked for. Without the OCI types, distribution answers 404 for OCI
/// manifests; without schema2 it converts Docker manifests to schema1 (another digest).
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
const MAX_CONFIG_BYTES: usize = 8 * 1024 * 1024;

/// A manifest or an index, as far as facts need it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

impl Platform {
    fn name(&self) -> String {
        match &self.variant {
            Some(v) if !v.is_empty() => format!("{}/{}/{v}", self.os, self.architecture),
            _ => format!("{}/{}", self.os, self.architecture),
        }
    }
}

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    config: Option<RunConfig>,
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    variant: Option<String>,
}

#[derive(Deserialize)]
struct RunConfig {
    #[serde(default, rename = "Labels")]
    labels: Option<std::collections::BTreeMap<String, String>>,
}

/// The labels worth showing reviewers: where the image comes from and what built it.
const LABELS: [&str; 3] = [
    "org.opencontainers.image.source",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.created",
];

fn labels_of(config: Option<&Config>) -> std::collections::BTreeMap<String, String> {
    config
        .and_then(|c| c.config.as_ref())
        .and_then(|c| c.labels.as_ref())
        .map(|l| {
            l.iter()
                .filter(|(k, _)| LABELS.contains(&k.as_str()))
                // Labels are anyone's text: one line, bounded, nothing that could break out of
                // the markdown it is shown in.
                .map(|(k, v)| {
                    let line = v.lines().next().unwrap_or("");
                    let clean = line
                        .chars()
                        .filter(|c| !c.is_control() && !matches!(c, '`' | '|' | '<' | '>'))
                        .take(200)
                        .collect();
                    (k.clone(), clean)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The digest a tag points at, by HEAD (`Docker-Content-Digest`), falling back to hashing
/// the manifest when a registry does not send the header.
pub async fn digest(
    t: &Transport,
    host: &str,
    path: &str,
    tag: &Tag,
) -> Result<Digest, RegistryError> {
    let scope = format!("repository:{path}:pull");
    let step = format!("resolving {path}:{tag}");
    let target = format!("/v2/{path}/manifests/{tag}");
    let req = |method| Request {
        method,
        host,
        target: &target,
        accept: Some(MANIFEST_ACCEPT),
        scope: &scope,
        step: &step,
        limit: MAX_MANIFEST_BYTES,
    };
    let head = t.send(&req(Method::HEAD)).await?;
    let header = head
        .headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Digest::new(v).ok());
    if let (true, Some(d)) = (head.status.is_success(), header) {
        return Ok(d);
    }
    let got = t.send(&req(Method::GET)).await?;
    if !got.status.is_success() {
        return Err(RegistryError::new(
            ErrorKind::Invalid,
            host,
            &step,
            format!("unexpected status {}", got.status),
        ));
    }
    Digest::new(&sha256(&got.body))
        .map_err(|e| RegistryError::new(ErrorKind::Invalid, host, &step, e.to_string()))
}

/// Platforms and creation time of the image `digest` names.
pub async fn facts(
    t: &Transport,
    host: &str,
    path: &str,
    digest: &Digest,
) -> Result<ImageFacts, RegistryError> {
    let manifest = fetch_manifest(t, host, path, digest).await?;
    facts_of(t, host, path, digest, manifest).await
}

/// The manifest `tag` points at, and its digest: one request instead of [`digest`]'s HEAD
/// then [`facts`]'s GET when nothing about the tag is cached (a fresh cache, a tag just
/// pushed). Registries that count pulls count this as one, as they count the GET by
/// digest it replaces.
pub async fn by_tag(
    t: &Transport,
    host: &str,
    path: &str,
    tag: &Tag,
) -> Result<(Digest, Manifest), RegistryError> {
    let step = format!("reading the manifest {path}:{tag}");
    let invalid = |d: String| RegistryError::new(ErrorKind::Invalid, host, &step, d);
    let resp = get_manifest(t, host, path, tag.as_str(), &step).await?;
    // What the body hashes to is its digest; a registry header that says otherwise means
    // the body is not what the registry sent.
    let digest = Digest::new(&sha256(&resp.body)).map_err(|e| invalid(e.to_string()))?;
    let header = resp
        .headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Digest::new(v).ok());
    if let Some(said) = header {
        verify(&said, &resp.body).map_err(invalid)?;
    }
    let manifest = parse_manifest(&resp.body).map_err(invalid)?;
    Ok((digest, manifest))
}

/// The facts of the image whose manifest (by `digest`) is `manifest`.
pub async fn facts_of(
    t: &Transport,
    host: &str,
    path: &str,
    digest: &Digest,
    manifest: Manifest,
) -> Result<ImageFacts, RegistryError> {
    if let Some(children) = &manifest.manifests {
        let platforms: Vec<String> = children
            .iter()
            .filter_map(|d| d.platform.as_ref())
            .filter(|p| p.os != "unknown" && !p.os.is_empty())
            .map(Platform::name)
            .collect();
        let pick = children
            .iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| p.name() == "linux/amd64")
            })
            .or_else(|| {
                children
                    .iter()
                    .find(|d| d.platform.as_ref().is_some_and(|p| p.os != "unknown"))
            });
        let (created, labels) = match pick {
            Some(child) => {
                let child_digest = Digest::new(&child.digest).map_err(|e| {
                    RegistryError::new(
                        ErrorKind::Invalid,
                        host,
                        &format!("reading the index {digest}"),
                        e.to_string(),
                    )
                })?;
                let child_manifest = fetch_manifest(t, host, path, &child_digest).await?;
                let config = config_of(t, host, path, &child_manifest).await?;
                (
                    config
                        .as_ref()
                        .and_then(|c| parse_created(c.created.as_deref())),
                    labels_of(config.as_ref()),
                )
            }
            None => (None, Default::default()),
        };
        return Ok(ImageFacts {
            digest: digest.clone(),
            platforms,
            created,
            labels,
            depth: Depth::Whole,
        });
    }
    let config = config_of(t, host, path, &manifest).await?;
    let platforms = config
        .as_ref()
        .and_then(|c| {
            let platform = Platform {
                os: c.os.clone()?,
                architecture: c.architecture.clone()?,
                variant: c.variant.clone(),
            };
            Some(vec![platform.name()])
        })
        .unwrap_or_default();
    Ok(ImageFacts {
        digest: digest.clone(),
        platforms,
        labels: labels_of(config.as_ref()),
        created: config.and_then(|c| parse_created(c.created.as_deref())),
        depth: Depth::Whole,
    })
}

async fn fetch_manifest(
    t: &Transport,
    host: &str,
    path: &str,
    digest: &Digest,
) -> Result<Manifest, RegistryError> {
    let step = format!("reading the manifest {digest} of {path}");
    let invalid = |d: String| RegistryError::new(ErrorKind::Invalid, host, &step, d);
    let resp = get_manifest(t, host, path, digest.as_str(), &step).await?;
    verify(digest, &resp.body).map_err(invalid)?;
    parse_manifest(&resp.body).map_err(invalid)
}

/// GET the manifest `reference` (a tag or a digest) names; any status but success is an
/// error.
async fn get_manifest(
    t: &Transport,
    host: &str,
    path: &str,
    reference: &str,
    step: &str,
) -> Result<super::transport::Response, RegistryError> {
    let resp = t
        .send(&Request {
            method: Method::GET,
            host,
            target: &format!("/v2/{path}/manifests/{reference}"),
            accept: Some(MANIFEST_ACCEPT),
            scope: &format!("repository:{path}:pull"),
            step,
            limit: MAX_MANIFEST_BYTES,
        })
        .await?;
    if !resp.status.is_success() {
        return Err(RegistryError::new(
            ErrorKind::Invalid,
            host,
            step,
            format!("unexpected status {}", resp.status),
        ));
    }
    Ok(resp)
}

/// A manifest or index as the API promises it (schema1 refused).
fn parse_manifest(body: &[u8]) -> Result<Manifest, String> {
    let manifest: Manifest = serde_json::from_slice(body)
        .ok()
        .filter(|m: &Manifest| m.config.is_some() || m.manifests.is_some())
        .ok_or_else(|| "the manifest is not JSON the API promises".to_string())?;
    if let Some(mt) = &manifest.media_type
        && mt.contains("schema1")
    {
        return Err("a schema1 manifest; push images with a current client".into());
    }
    Ok(manifest)
}

async fn config_of(
    t: &Transport,
    host: &str,
    path: &str,
    manifest: &Manifest,
) -> Result<Option<Config>, RegistryError> {
    let Some(config) = &manifest.config else {
        return Ok(None);
    };
    let step = format!("reading the image config of {path}");
    let invalid = |d: String| RegistryError::new(ErrorKind::Invalid, host, &step, d);
    let digest = Digest::new(&config.digest).map_err(|e| invalid(e.to_string()))?;
    let resp = t
        .send(&Request {
            method: Method::GET,
            host,
            target: &format!("/v2/{path}/blobs/{digest}"),
            accept: None,
            scope: &format!("repository:{path}:pull"),
            step: &step,
            limit: MAX_CONFIG_BYTES,
        })
        .await?;
    if !resp.status.is_success() {
        return Err(invalid(format!("unexpected status {}", resp.status)));
    }
    verify(&digest, &resp.body).map_err(invalid)?;
    // A config that is not JSON (an artifact) simply has no creation time.
    Ok(serde_json::from_slice(&resp.body).ok())
}

fn parse_created(text: Option<&str>) -> Option<Timestamp> {
    text?.parse().ok()
}

fn sha256(body: &[u8]) -> String {
    let hash = Sha256::digest(body);
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    for b in hash.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Check a body against the sha256 digest it was fetched by (other algorithms pass).
fn verify(digest: &Digest, body: &[u8]) -> Result<(), String> {
    if digest.as_str().starts_with("sha256:") && sha256(body) != digest.as_str() {
        return Err(format!("the content does not match its digest {digest}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_empty() {
        assert_eq!(
            sha256(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
