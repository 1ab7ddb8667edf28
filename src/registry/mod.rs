//! The registry watcher: tag lists and image metadata from OCI registries, politely.
//!
//! [`Registry`] is the one type the rest of the program uses: [`Registry::tags`] lists an
//! image's tags once per pass however many promotions watch it, [`Registry::digest`]
//! resolves a tag with one HEAD, and [`Registry::facts`] fetches metadata only for the tags
//! a policy actually needs, once per pass per tag (one HEAD for the digest), the rest
//! cached by digest. Underneath, [`transport`] paces,
//! authenticates and retries every request.
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
pub use tags::TagList;
pub use transport::{HostConfig, RetryPolicy};

use crate::image::{Depth, Digest, ImageFacts, Repository, Tag};
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

type Once<T> = Arc<OnceCell<Result<T, RegistryError>>>;

/// Registries as tagpromoter sees them.
pub struct Registry {
    transport: Transport,
    listings: Mutex<HashMap<Repository, Once<Arc<TagList>>>>,
    inspected: Mutex<HashMap<(Repository, Tag), Once<ImageFacts>>>,
    resolved: Mutex<HashMap<(Repository, Tag), Once<Digest>>>,
    facts: cache::FactsCache,
}

impl Registry {
    /// A registry client for `hosts` (host name → how to reach it).
    pub fn new(
        hosts: HashMap<String, HostConfig>,
        retry: RetryPolicy,
    ) -> Result<Self, RegistryError> {
        let hosts = hosts
            .into_iter()
            .map(|(h, c)| (api_host(&h).to_string(), c))
            .collect();
        Ok(Self {
            transport: Transport::new(hosts, retry)?,
            listings: Mutex::default(),
            inspected: Mutex::default(),
            resolved: Mutex::default(),
            facts: cache::FactsCache::default(),
        })
    }

    /// Count every request in `metrics` (by host and status, with latency).
    pub fn with_metrics(mut self, metrics: crate::metrics::RegistryRequests) -> Self {
        self.transport.set_metrics(metrics);
        self
    }

    /// Keep image metadata on disk under `dir` too (shared by runs and processes).
    pub fn with_cache_dir(mut self, dir: &std::path::Path) -> Self {
        self.facts = cache::FactsCache::on_disk(dir.join("registry"));
        self
    }

    /// A registry client configured by the rules' `Settings.registries`.
    pub fn from_settings(settings: &Settings) -> Result<Self, RegistryError> {
        let hosts = settings
            .registries
            .iter()
            .map(|r| {
                let config = HostConfig {
                    insecure: r.insecure,
                    requests_per_second: r.requests_per_second.unwrap_or(10.0),
                    concurrency: r.concurrency.unwrap_or(4),
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

    /// Start a new pass: tag lists are listed and tags resolved again (metadata by digest
    /// stays cached).
    pub async fn new_pass(&self) {
        self.listings.lock().await.clear();
        self.inspected.lock().await.clear();
        self.resolved.lock().await.clear();
    }

    /// The tags of `image`, listed at most once per pass (concurrent callers share it, and
    /// the one list: a fleet's 10,000 lists are not held twice).
    pub async fn tags(&self, image: &Repository) -> Result<Arc<TagList>, RegistryError> {
        let cell = {
            let mut listings = self.listings.lock().await;
            Arc::clone(listings.entry(image.clone()).or_default())
        };
        cell.get_or_init(|| async {
            let (host, path) = image.split();
            tags::list(&self.transport, api_host(host), &path)
                .await
                .map(Arc::new)
        })
        .await
        .clone()
    }

    /// Digest, platforms and creation time of `image:tag`: the tag is resolved once per pass
    /// (concurrent callers share it); what its digest names is cached for good.
    pub async fn facts(&self, image: &Repository, tag: &Tag) -> Result<ImageFacts, RegistryError> {
        let cell = {
            let mut inspected = self.inspected.lock().await;
            Arc::clone(inspected.entry((image.clone(), tag.clone())).or_default())
        };
        cell.get_or_init(|| self.inspect(image, tag)).await.clone()
    }

    /// What `image:tag` names, by one HEAD, once per pass (concurrent callers share it).
    pub async fn digest(&self, image: &Repository, tag: &Tag) -> Result<Digest, RegistryError> {
        let cell = {
            let mut resolved = self.resolved.lock().await;
            Arc::clone(resolved.entry((image.clone(), tag.clone())).or_default())
        };
        cell.get_or_init(|| async {
            let (host, path) = image.split();
            manifest::digest(&self.transport, api_host(host), &path, tag).await
        })
        .await
        .clone()
    }

    /// The facts of `image:tag` to `depth`: its digest alone (one HEAD) or
    /// [`Registry::facts`]. A digest alone says nothing more even when more is cached,
    /// so that what a pass sees does not depend on what the cache happens to hold.
    pub async fn facts_to(
        &self,
        image: &Repository,
        tag: &Tag,
        depth: Depth,
    ) -> Result<ImageFacts, RegistryError> {
        match depth {
            Depth::Digest => Ok(ImageFacts::digest_only(self.digest(image, tag).await?)),
            Depth::Whole => self.facts(image, tag).await,
        }
    }

    async fn inspect(&self, image: &Repository, tag: &Tag) -> Result<ImageFacts, RegistryError> {
        let (host, path) = image.split();
        let reference = format!("{image}:{tag}");
        if !self.facts.seen(&reference).await {
            let (digest, read) =
                manifest::by_tag(&self.transport, api_host(host), &path, tag).await?;
            // Another tag or repository may name the same image.
            let facts = match self.facts.get(&digest).await {
                Some(f) => f,
                None => {
                    let f =
                        manifest::facts_of(&self.transport, api_host(host), &path, &digest, read)
                            .await?;
                    self.facts.put(&digest, &f).await;
                    f
                }
            };
            self.facts.saw(&reference).await;
            return Ok(facts);
        }
        let digest = self.digest(image, tag).await?;
        if let Some(f) = self.facts.get(&digest).await {
            return Ok(f);
        }
        let facts = manifest::facts(&self.transport, api_host(host), &path, &digest).await?;
        self.facts.put(&digest, &facts).await;
        Ok(facts)
    }

    /// Requests `image`'s registry may have in flight (its `concurrency`).
    pub fn concurrency(&self, image: &Repository) -> usize {
        self.transport.concurrency(api_host(image.split().0))
    }

    /// Requests sent so far.
    pub fn request_count(&self) -> u64 {
        self.transport.request_count()
    }
}
