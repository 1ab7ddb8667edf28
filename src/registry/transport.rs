//! One HTTP mechanism for every registry request: pacing per host, authentication (basic
//! or bearer, learned from the registry's challenge), retries with backoff (a 429's
//! `Retry-After` honoured host-wide), timeouts, bounded bodies, manual redirects, and the
//! rule that credentials only go to the registry's own origin.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use base64::Engine;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use tokio::sync::Mutex;

use super::auth::{self, Challenge, TokenCache};
use super::credentials::{Credential, CredentialSource, CredentialStore};
use super::error::{ErrorKind, RegistryError};
use super::pacing::Pacer;
use super::response::{
    describe_transport_error, parse_retry_after, read_limited, registry_error_code,
};

/// How one registry host is reached.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Plain http instead of https.
    pub insecure: bool,
    /// Request starts per second.
    pub requests_per_second: f64,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Where credentials come from.
    pub credentials: CredentialSource,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            insecure: false,
            requests_per_second: 10.0,
            concurrency: 4,
            credentials: CredentialSource::default(),
        }
    }
}

/// Retry and timeout settings.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: usize,
    /// First backoff delay.
    pub min_delay: Duration,
    /// Longest backoff delay (and longest `Retry-After` honoured).
    pub max_delay: Duration,
    /// Timeout of each request, body included.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
        }
    }
}

/// A request to a registry.
pub struct Request<'a> {
    /// GET or HEAD.
    pub method: Method,
    /// The registry host (as configured: `ghcr.io`, `127.0.0.1:5000`).
    pub host: &'a str,
    /// Path and query (`/v2/acme/app/tags/list?n=1000`), or an absolute URL on the same
    /// origin (a `Link`).
    pub target: &'a str,
    /// `Accept` header.
    pub accept: Option<&'a str>,
    /// The auth scope (`repository:acme/app:pull`).
    pub scope: &'a str,
    /// What is being done, for errors ("listing tags of acme/app").
    pub step: &'a str,
    /// The largest body accepted.
    pub limit: usize,
}

/// A registry's answer.
#[derive(Debug)]
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body (empty for HEAD).
    pub body: Vec<u8>,
    /// The URL that answered.
    pub url: Url,
}

/// The transport shared by every registry call.
pub struct Transport {
    http: reqwest::Client,
    hosts: HashMap<String, HostConfig>,
    pacers: Mutex<HashMap<String, Arc<Pacer>>>,
    challenges: Mutex<HashMap<String, Challenge>>,
    credentials: CredentialStore,
    tokens: TokenCache,
    retry: RetryPolicy,
    requests: std::sync::atomic::AtomicU64,
    metrics: Option<crate::metrics::RegistryRequests>,
}

/// A failed attempt: the error, whether to retry, and how long the registry asked to wait.
struct Failure {
    error: RegistryError,
    retry: bool,
    retry_after: Option<Duration>,
}

const MAX_REDIRECTS: usize = 5;

impl Transport {
    /// A transport for the given hosts (unlisted hosts: https, anonymous, default pace).
    pub fn new(
        hosts: HashMap<String, HostConfig>,
        retry: RetryPolicy,
    ) -> Result<Self, RegistryError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(retry.timeout)
            .user_agent(concat!("tagpromoter/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                RegistryError::new(
                    ErrorKind::Invalid,
                    "",
                    "building the HTTP client",
                    describe_transport_error(&e),
                )
            })?;
        Ok(Self {
            http,
            hosts,
            pacers: Mutex::default(),
            challenges: Mutex::default(),
            credentials: CredentialStore::default(),
            tokens: TokenCache::default(),
            retry,
            requests: Default::default(),
            metrics: None,
        })
    }

    /// Count requests, statuses and latency in `metrics`.
    pub fn set_metrics(&mut self, metrics: crate::metrics::RegistryRequests) {
        self.metrics = Some(metrics);
    }

    /// Requests sent so far (for benchmarks and tests).
    pub fn request_count(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Requests `host` may have in flight.
    pub fn concurrency(&self, host: &str) -> usize {
        self.hosts.get(host).map_or(4, |c| c.concurrency).max(1)
    }

    fn host(&self, host: &str) -> HostConfig {
        self.hosts.get(host).cloned().unwrap_or_default()
    }

    /// `https://host` (or `http://` for insecure hosts).
    pub fn base(&self, host: &str) -> Result<Url, RegistryError> {
        let scheme = if self.host(host).insecure {
            "http"
        } else {
            "https"
        };
        Url::parse(&format!("{scheme}://{host}/")).map_err(|_| {
            RegistryError::new(
                ErrorKind::Invalid,
                host,
                "building a URL",
                "not a valid host name",
            )
        })
    }

    async fn pacer(&self, host: &str) -> Arc<Pacer> {
        let mut pacers = self.pacers.lock().await;
        let config = self.host(host);
        Arc::clone(pacers.entry(host.to_string()).or_insert_with(|| {
            Arc::new(Pacer::new(config.requests_per_second, config.concurrency))
        }))
    }

    /// Send `req`, retrying transient failures. Non-2xx answers other than the classified
    /// errors are returned to the caller (e.g. 400 for an unsupported page size).
    pub async fn send(&self, req: &Request<'_>) -> Result<Response, RegistryError> {
        let policy = ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_max_times(self.retry.max_retries)
            .with_jitter();
        let max_wait = self.retry.max_delay;
        (|| self.attempt(req))
            .retry(policy)
            .when(|f: &Failure| f.retry)
            // `d` is None once the retries are spent; otherwise a 429's wait replaces it.
            .adjust(move |f: &Failure, d| match (d, f.retry_after) {
                (Some(_), Some(wait)) => Some(wait.min(max_wait)),
                (d, _) => d,
            })
            .notify(|f: &Failure, d| {
                tracing::warn!(registry = %f.error.registry, step = %f.error.step, kind = f.error.kind.as_str(), detail = %f.error.detail, retry_in = ?d, "registry request failed; retrying");
            })
            .await
            .map_err(|f| f.error)
    }

    async fn attempt(&self, req: &Request<'_>) -> Result<Response, Failure> {
        let fail = |kind, detail: String, retry| Failure {
            error: RegistryError::new(kind, req.host, req.step, detail),
            retry,
            retry_after: None,
        };
        let base = self.base(req.host).map_err(|error| Failure {
            error,
            retry: false,
            retry_after: None,
        })?;
        let mut url = base.join(req.target).map_err(|_| {
            fail(
                ErrorKind::Invalid,
                format!("{:?} is not a valid URL", req.target),
                false,
            )
        })?;
        if url.origin() != base.origin() {
            return Err(fail(
                ErrorKind::Invalid,
                format!(
                    "refusing to follow a link to another origin ({})",
                    url.origin().ascii_serialization()
                ),
                false,
            ));
        }
        let mut authenticated_once = false;
        let mut redirects = 0;
        loop {
            let same_origin = url.origin() == base.origin();
            let authorization = if same_origin {
                self.authorization(req).await.map_err(|error| Failure {
                    error,
                    retry: false,
                    retry_after: None,
                })?
            } else {
                None
            };
            let resp = self.exchange(req, &url, authorization).await?;
            let status = resp.status();
            if status.is_redirection() {
                redirects += 1;
                let location = resp
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok());
                let next = location.and_then(|l| url.join(l).ok());
                match next {
                    Some(next) if redirects <= MAX_REDIRECTS => {
                        url = next;
                        continue;
                    }
                    _ => {
                        return Err(fail(
                            ErrorKind::Invalid,
                            format!("{status} without a usable Location, or too many redirects"),
                            false,
                        ));
                    }
                }
            }
            if status == StatusCode::UNAUTHORIZED && same_origin && !authenticated_once {
                let challenge = resp
                    .headers()
                    .get(header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(auth::parse_challenge);
                if let Some(challenge) = challenge {
                    authenticated_once = true;
                    self.tokens.forget(req.host, req.scope).await;
                    self.challenges
                        .lock()
                        .await
                        .insert(req.host.to_string(), challenge);
                    continue;
                }
            }
            return self.classify(req, resp, url).await;
        }
    }

    /// One request on the wire, paced.
    async fn exchange(
        &self,
        req: &Request<'_>,
        url: &Url,
        authorization: Option<HeaderValue>,
    ) -> Result<reqwest::Response, Failure> {
        let pacer = self.pacer(req.host).await;
        let _turn = pacer.turn().await;
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut builder = self.http.request(req.method.clone(), url.clone());
        if let Some(accept) = req.accept {
            builder = builder.header(header::ACCEPT, accept);
        }
        if let Some(a) = authorization {
            builder = builder.header(header::AUTHORIZATION, a);
        }
        let started = std::time::Instant::now();
        let sent = builder.send().await;
        if let Some(m) = &self.metrics {
            let status = match &sent {
                Ok(r) => r.status().as_u16().to_string(),
                Err(_) => "error".to_string(),
            };
            m.request(req.host, &status, started.elapsed());
        }
        sent.map_err(|e| Failure {
            error: RegistryError::new(
                ErrorKind::Unavailable,
                req.host,
                req.step,
                describe_transport_error(&e),
            ),
            retry: true,
            retry_after: None,
        })
    }

    async fn classify(
        &self,
        req: &Request<'_>,
        resp: reqwest::Response,
        url: Url,
    ) -> Result<Response, Failure> {
        let status = resp.status();
        let err = |kind, detail: String, retry, retry_after| Failure {
            error: RegistryError::new(kind, req.host, req.step, detail),
            retry,
            retry_after,
        };
        if status == StatusCode::TOO_MANY_REQUESTS {
            let wait = resp
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after)
                .unwrap_or(self.retry.min_delay);
            let wait = wait.min(self.retry.max_delay);
            self.pacer(req.host).await.pause(wait).await;
            return Err(err(
                ErrorKind::RateLimited,
                format!(
                    "429 Too Many Requests (Retry-After {}s)",
                    wait.as_secs_f64()
                ),
                true,
                Some(wait),
            ));
        }
        if status.is_server_error() {
            return Err(err(ErrorKind::Unavailable, format!("{status}"), true, None));
        }
        let headers = resp.headers().clone();
        let body = if req.method == Method::HEAD {
            Vec::new()
        } else {
            read_limited(resp, req.limit)
                .await
                .map_err(|(detail, retry)| {
                    let kind = if retry {
                        ErrorKind::Unavailable
                    } else {
                        ErrorKind::Invalid
                    };
                    err(kind, detail, retry, None)
                })?
        };
        match status {
            s if s.is_success() => Ok(Response {
                status,
                headers,
                body,
                url,
            }),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(err(
                ErrorKind::Auth,
                format!("{status}{}", registry_error_code(&body)),
                false,
                None,
            )),
            StatusCode::NOT_FOUND => Err(err(
                ErrorKind::NotFound,
                format!("{status}{}", registry_error_code(&body)),
                false,
                None,
            )),
            _ => Ok(Response {
                status,
                headers,
                body,
                url,
            }),
        }
    }

    /// The Authorization header for `req`, from what the host asked for last time.
    async fn authorization(&self, req: &Request<'_>) -> Result<Option<HeaderValue>, RegistryError> {
        let challenge = self.challenges.lock().await.get(req.host).cloned();
        let Some(challenge) = challenge else {
            return Ok(None);
        };
        let auth_err =
            |detail: String| RegistryError::new(ErrorKind::Auth, req.host, req.step, detail);
        // A cached token needs no credential lookup (which may run a helper).
        if let Challenge::Bearer { .. } = &challenge
            && let Some(token) = self.tokens.get(req.host, req.scope).await
        {
            return Ok(Some(sensitive(&format!("Bearer {}", token.expose()))?));
        }
        let credential = self
            .credentials
            .lookup(req.host, &self.host(req.host).credentials)
            .await
            .map_err(auth_err)?;
        match challenge {
            Challenge::Basic => match credential {
                Some(Credential::Basic { username, password }) => {
                    let raw = format!("{username}:{}", password.expose());
                    let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
                    Ok(Some(sensitive(&format!("Basic {encoded}"))?))
                }
                Some(Credential::IdentityToken(_)) => Err(auth_err(
                    "the registry wants basic auth, and only an identity token is configured"
                        .into(),
                )),
                None => Err(auth_err(
                    "the registry requires credentials, and none are configured for this host"
                        .into(),
                )),
            },
            Challenge::Bearer { realm, service } => {
                let token = self
                    .fetch_token(req, &realm, service.as_deref(), credential.as_ref())
                    .await?;
                Ok(Some(sensitive(&format!("Bearer {}", token.expose()))?))
            }
        }
    }

    async fn fetch_token(
        &self,
        req: &Request<'_>,
        realm: &str,
        service: Option<&str>,
        credential: Option<&Credential>,
    ) -> Result<super::credentials::Secret, RegistryError> {
        let auth_err =
            |detail: String| RegistryError::new(ErrorKind::Auth, req.host, req.step, detail);
        let unavailable =
            |detail: String| RegistryError::new(ErrorKind::Unavailable, req.host, req.step, detail);
        let realm_url =
            Url::parse(realm).map_err(|_| auth_err("the token realm is not a URL".into()))?;
        let base = self.base(req.host)?;
        if credential.is_some() && !auth::realm_may_receive_credentials(&realm_url, &base) {
            return Err(auth_err(format!(
                "refusing to send credentials to the token realm {} (it is not https, nor the registry's own host)",
                realm_url.origin().ascii_serialization()
            )));
        }
        let params = auth::token_request_params(service, req.scope, credential);
        let realm_host = realm_url.host_str().unwrap_or_default().to_string();
        let pacer = self.pacer(&realm_host).await;
        let _turn = pacer.turn().await;
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let builder = match credential {
            Some(Credential::IdentityToken(_)) => self.http.post(realm_url.clone()).form(&params),
            Some(Credential::Basic { username, password }) => self
                .http
                .get(realm_url.clone())
                .query(&params)
                .basic_auth(username, Some(password.expose())),
            None => self.http.get(realm_url.clone()).query(&params),
        };
        let resp = builder
            .send()
            .await
            .map_err(|e| unavailable(format!("token request: {}", describe_transport_error(&e))))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(auth_err(format!(
                "the token server refused the credentials ({status})"
            )));
        }
        if !status.is_success() {
            return Err(unavailable(format!("the token server answered {status}")));
        }
        let body = read_limited(resp, 64 * 1024)
            .await
            .map_err(|(d, _)| unavailable(format!("token response: {d}")))?;
        let (token, lifetime) = auth::read_token_answer(&body)
            .ok_or_else(|| auth_err("the token server's answer holds no token".into()))?;
        self.tokens
            .put(req.host, req.scope, token.clone(), lifetime)
            .await;
        Ok(token)
    }
}

fn sensitive(value: &str) -> Result<HeaderValue, RegistryError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| {
        RegistryError::new(
            ErrorKind::Auth,
            "",
            "building credentials",
            "a credential holds characters that cannot go in a header",
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}
