//! Pushing test images to a registry without Docker: blobs by `POST` + `PUT ?digest=`,
//! manifests by `PUT /v2/<repo>/manifests/<tag>`. Each image gets its own config (so its
//! own digest and `created`); one tiny layer is shared.

use base64::Engine;
use sha2::{Digest, Sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

pub fn sha256(data: &[u8]) -> String {
    let h = Sha256::digest(data);
    format!(
        "sha256:{}",
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// A client that pushes to one registry.
pub struct Pusher {
    client: reqwest::Client,
    base: String,
    auth: Option<String>,
}

/// A pushed manifest.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub digest: String,
    pub size: usize,
}

impl Pusher {
    /// Push to `addr` (`127.0.0.1:PORT`), anonymously.
    pub fn new(addr: &str) -> Self {
        Self {
            client: reqwest::Client::new(),
            base: format!("http://{addr}"),
            auth: None,
        }
    }

    /// With basic auth.
    pub fn basic(mut self, user: &str, pass: &str) -> Self {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        self.auth = Some(format!("Basic {b64}"));
        self
    }

    /// With a bearer token.
    pub fn bearer(mut self, token: &str) -> Self {
        self.auth = Some(format!("Bearer {token}"));
        self
    }

    fn req(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let b = self.client.request(method, url);
        match &self.auth {
            Some(a) => b.header("Authorization", a),
            None => b,
        }
    }

    pub async fn blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256(data);
        let resp = self
            .req(
                reqwest::Method::POST,
                &format!("{}/v2/{repo}/blobs/uploads/", self.base),
            )
            .send()
            .await
            .expect("start upload");
        assert_eq!(resp.status().as_u16(), 202, "blob upload start");
        let location = resp.headers()["location"].to_str().unwrap().to_string();
        let url = if location.starts_with("http") {
            location
        } else {
            format!("{}{location}", self.base)
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        let resp = self
            .req(reqwest::Method::PUT, &format!("{url}{sep}digest={digest}"))
            .header("Content-Type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .expect("finish upload");
        assert_eq!(resp.status().as_u16(), 201, "blob upload");
        digest
    }

    pub async fn manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Pushed {
        let resp = self
            .req(
                reqwest::Method::PUT,
                &format!("{}/v2/{repo}/manifests/{reference}", self.base),
            )
            .header("Content-Type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .expect("put manifest");
        assert_eq!(
            resp.status().as_u16(),
            201,
            "manifest upload: {}",
            resp.text().await.unwrap_or_default()
        );
        Pushed {
            digest: sha256(body),
            size: body.len(),
        }
    }

    /// Push one image for `os/arch`, created at `created` (RFC 3339); tagged `tag` if given.
    pub async fn image(
        &self,
        repo: &str,
        tag: Option<&str>,
        created: &str,
        os: &str,
        arch: &str,
    ) -> Pushed {
        self.labeled(repo, tag, created, os, arch, serde_json::json!({}))
            .await
    }

    /// [`Pusher::image`] with these config labels.
    pub async fn labeled(
        &self,
        repo: &str,
        tag: Option<&str>,
        created: &str,
        os: &str,
        arch: &str,
        labels: serde_json::Value,
    ) -> Pushed {
        let layer = b"tagpromoter test layer";
        let layer_digest = self.blob(repo, layer).await;
        let config = serde_json::json!({
            "created": created, "os": os, "architecture": arch,
            "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]},
            "config": {"Labels": labels},
        })
        .to_string();
        let config_digest = self.blob(repo, config.as_bytes()).await;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
        })
        .to_string();
        let digest = sha256(manifest.as_bytes());
        self.manifest(
            repo,
            tag.unwrap_or(&digest),
            OCI_MANIFEST,
            manifest.as_bytes(),
        )
        .await
    }

    /// Push an index of `children` (manifest, os, arch) under `tag`.
    pub async fn index(&self, repo: &str, tag: &str, children: &[(Pushed, &str, &str)]) -> Pushed {
        let manifests: Vec<serde_json::Value> = children
            .iter()
            .map(|(p, os, arch)| {
                serde_json::json!({"mediaType": OCI_MANIFEST, "digest": p.digest, "size": p.size, "platform": {"os": os, "architecture": arch}})
            })
            .collect();
        let index =
            serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
                .to_string();
        self.manifest(repo, tag, OCI_INDEX, index.as_bytes()).await
    }

    /// Push an index of `children` (manifest, `os/arch[/variant]`) under `tag`.
    pub async fn platform_index(
        &self,
        repo: &str,
        tag: &str,
        children: &[(Pushed, &str)],
    ) -> Pushed {
        let manifests: Vec<serde_json::Value> = children
            .iter()
            .map(|(p, platform)| {
                let parts: Vec<&str> = platform.split('/').collect();
                let mut platform = serde_json::json!({"os": parts[0], "architecture": parts[1]});
                if let Some(variant) = parts.get(2) {
                    platform["variant"] = serde_json::json!(variant);
                }
                serde_json::json!({"mediaType": OCI_MANIFEST, "digest": p.digest, "size": p.size, "platform": platform})
            })
            .collect();
        let index =
            serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
                .to_string();
        self.manifest(repo, tag, OCI_INDEX, index.as_bytes()).await
    }

    /// Tag an existing manifest body again (cheap: one request per tag).
    pub async fn retag(&self, repo: &str, tags: &[String], body: &[u8], media_type: &str) {
        for tag in tags {
            self.manifest(repo, tag, media_type, body).await;
        }
    }

    /// The manifest body of a reference (to re-tag it).
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Vec<u8> {
        self.req(
            reqwest::Method::GET,
            &format!("{}/v2/{repo}/manifests/{reference}", self.base),
        )
        .header("Accept", OCI_MANIFEST)
        .send()
        .await
        .expect("get manifest")
        .bytes()
        .await
        .expect("manifest body")
        .to_vec()
    }

    pub async fn delete(&self, repo: &str, digest: &str) {
        let resp = self
            .req(
                reqwest::Method::DELETE,
                &format!("{}/v2/{repo}/manifests/{digest}", self.base),
            )
            .send()
            .await
            .expect("delete");
        assert_eq!(resp.status().as_u16(), 202);
    }
}

/// Push `repos` repositories named by `name(i)`, each with every tag of `tags` on one shared
/// manifest (one request per tag; 16 repositories at a time). For benchmarks.
pub async fn seed_many(addr: &str, repos: usize, name: fn(usize) -> String, tags: Vec<String>) {
    use std::sync::Arc;
    let pusher = Arc::new(Pusher::new(addr));
    pusher
        .image(
            "bench/seed",
            Some("seed"),
            "2026-01-01T00:00:00Z",
            "linux",
            "amd64",
        )
        .await;
    let body = Arc::new(pusher.get_manifest("bench/seed", "seed").await);
    let tags = Arc::new(tags);
    let limit = Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..repos {
        let (pusher, body, tags, limit) = (
            Arc::clone(&pusher),
            Arc::clone(&body),
            Arc::clone(&tags),
            Arc::clone(&limit),
        );
        tasks.spawn(async move {
            let _permit = limit.acquire().await.expect("semaphore open");
            let repo = name(i);
            // The manifest's blobs must exist in each repository before it can be tagged there.
            pusher
                .image(
                    &repo,
                    Some("seed"),
                    "2026-01-01T00:00:00Z",
                    "linux",
                    "amd64",
                )
                .await;
            pusher.retag(&repo, &tags, &body, OCI_MANIFEST).await;
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Like [`seed_many`], but each repository's tags name an image of its own (another config,
/// so another digest), as real images do: nothing fetched for one repository serves
/// another. For benchmarks of what a fresh cache costs.
pub async fn seed_distinct(addr: &str, repos: usize, name: fn(usize) -> String, tags: Vec<String>) {
    use std::sync::Arc;
    let pusher = Arc::new(Pusher::new(addr));
    let tags = Arc::new(tags);
    let limit = Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..repos {
        let (pusher, tags, limit) = (Arc::clone(&pusher), Arc::clone(&tags), Arc::clone(&limit));
        tasks.spawn(async move {
            let _permit = limit.acquire().await.expect("semaphore open");
            let repo = name(i);
            let created = format!("2026-01-01T{:02}:{:02}:00Z", i / 60 % 24, i % 60);
            pusher
                .image(&repo, Some("seed"), &created, "linux", "amd64")
                .await;
            let body = pusher.get_manifest(&repo, "seed").await;
            pusher.retag(&repo, &tags, &body, OCI_MANIFEST).await;
        });
    }
    while tasks.join_next().await.is_some() {}
}
