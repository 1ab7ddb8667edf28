//! The registry watcher: tag lists and image metadata from OCI registries, politely.
//!
//! [`Registry`] is the one type the rest of the program uses: [`Registry::tags`] lists an
//! image's tags once per pass however many promotions watch it, [`Registry::digest`] and
//! [`Registry::facts`] fetch metadata only for the tags a policy actually needs, cached by
//! digest. Underneath, [`transport`] paces, authenticates and retries every request.
//!
//! It must not decide anything: which tags matter is [`crate::policy`]'s business.

pub mod auth;
pub mod cache;
pub mod credentials;
pub mod error;
pub mod manifest;
pub mod pacing;
pub mod response;
pub mod tags;
pub mod transport;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Mutex, OnceCell};

pub use error::{ErrorKind, RegistryError};
pub use manifest::ImageFacts;
pub use tags::TagList;
pub use transport::{HostConfig, RetryPolicy};

use crate::image::{Digest, Repository, Tag};
use crate::rules::Settings;
use credentials::CredentialSource;
use transport::Transport;

/// Docker Hub's API lives on another host than its name.
fn api_host(host: &str) -> &str {
    if host == "docker.io" {
        "registry-1.docker.io"
    } else {
        host
    }
}

type Listing = Arc<OnceCell<Result<TagList, RegistryError>>>;

/// Registries as tagpromoter sees them.
pub struct Registry {
    transport: Transport,
    listings: Mutex<HashMap<Repository, Listing>>,
    facts: cache::FactsCache,
}

impl Registry {
    /// A registry client for `hosts` (host name → how to reach it).
    pub fn new(hosts: HashMap<String, HostConfig>, retry: RetryPolicy) -> Result<Self, String> {
        let hosts = hosts
            .into_iter()
            .map(|(h, c)| (api_host(&h).to_string(), c))
            .collect();
        Ok(Self {
            transport: Transport::new(hosts, retry)?,
            listings: Mutex::default(),
            facts: cache::FactsCache::default(),
        })
    }

    /// Keep image metadata on disk under `dir` too (shared by runs and processes).
    pub fn with_cache_dir(mut self, dir: &std::path::Path) -> Self {
        self.facts = cache::FactsCache::on_disk(dir.join("registry"));
        self
    }

    /// A registry client configured by the rules' `Settings.registries`.
    pub fn from_settings(settings: &Settings) -> Result<Self, String> {
        let hosts = settings
            .registries
            .iter()
            .map(|r| {
                let config = HostConfig {
                    insecure: r.insecure,
                    requests_per_second: r.requests_per_second.unwrap_or(10.0),
                    concurrency: 4,
                    credentials: CredentialSource {
                        docker_config: r.docker_config.clone(),
                        username: r.username.clone(),
                        password_file: r.password_file.clone(),
                    },
                };
                (r.host.clone(), config)
            })
            .collect();
        Self::new(hosts, RetryPolicy::default())
    }

    /// Start a new pass: tag lists are listed again (metadata by digest stays cached).
    pub async fn new_pass(&self) {
        self.listings.lock().await.clear();
    }

    /// The tags of `image`, listed at most once per pass (concurrent callers share it).
    pub async fn tags(&self, image: &Repository) -> Result<TagList, RegistryError> {
        let cell = {
            let mut listings = self.listings.lock().await;
            Arc::clone(listings.entry(image.clone()).or_default())
        };
        cell.get_or_init(|| async {
            let (host, path) = image.split();
            tags::list(&self.transport, api_host(host), &path).await
        })
        .await
        .clone()
    }

    /// The digest `image:tag` points at now.
    pub async fn digest(&self, image: &Repository, tag: &Tag) -> Result<Digest, RegistryError> {
        let (host, path) = image.split();
        manifest::digest(&self.transport, api_host(host), &path, tag).await
    }

    /// Platforms and creation time of `image:tag` (cached by digest).
    pub async fn facts(
        &self,
        image: &Repository,
        tag: &Tag,
    ) -> Result<(Digest, ImageFacts), RegistryError> {
        let digest = self.digest(image, tag).await?;
        if let Some(f) = self.facts.get(&digest).await {
            return Ok((digest, f));
        }
        let (host, path) = image.split();
        let facts = manifest::facts(&self.transport, api_host(host), &path, &digest).await?;
        self.facts.put(&digest, &facts).await;
        Ok((digest, facts))
    }

    /// Requests sent so far.
    pub fn request_count(&self) -> u64 {
        self.transport.request_count()
    }
}
