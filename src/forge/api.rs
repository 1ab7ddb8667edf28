//! What the forge clients share: one HTTP client (bounded time, no redirects — a token must
//! not follow one), the token read from its file at each call and sent as a sensitive
//! header in the forge's scheme, and one classification of answers (the forge's own
//! `message` kept for people; the request, and its token, never).

use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{ForgeError, ForgeErrorKind, ForgeSetupError};

/// The largest answer read from a forge (a page of pull requests with long bodies stays
/// far below); a larger one is refused as `invalid`, never held in memory.
pub(super) const MAX_ANSWER: usize = 8 << 20;

/// How a forge takes its token.
#[derive(Debug, Clone, Copy)]
pub(super) enum Scheme {
    /// `Authorization: Bearer <token>` (GitHub).
    Bearer,
    /// `PRIVATE-TOKEN: <token>` (GitLab).
    PrivateToken,
    /// `Authorization: token <token>` (Gitea, Forgejo).
    Token,
}

/// One forge project (repository) and how to call its API.
pub(super) struct Api {
    http: reqwest::Client,
    project: String,
    token_file: PathBuf,
    scheme: Scheme,
    headers: &'static [(&'static str, &'static str)],
    /// `kind (host)`, for messages.
    pub name: String,
}

impl Api {
    /// The project at `api_url` + `path`, for the forge `kind`, sending `headers` too.
    pub fn new(
        kind: &str,
        api_url: &str,
        path: &str,
        token_file: PathBuf,
        scheme: Scheme,
        headers: &'static [(&'static str, &'static str)],
    ) -> Result<Self, ForgeSetupError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tagpromoter/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ForgeSetupError(format!("cannot build the HTTP client: {e}")))?;
        let host = reqwest::Url::parse(api_url)
            .ok()
            .and_then(|u| {
                u.host_str().map(|h| match u.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h.to_string(),
                })
            })
            .unwrap_or_default();
        Ok(Self {
            http,
            project: format!("{}{path}", api_url.trim_end_matches('/')),
            token_file,
            scheme,
            headers,
            name: format!("{kind} ({host})"),
        })
    }

    fn error(&self, kind: ForgeErrorKind, step: &str, detail: String) -> ForgeError {
        ForgeError {
            kind,
            forge: self.name.clone(),
            step: step.to_string(),
            detail,
        }
    }

    /// The token as this forge's auth header, marked sensitive.
    fn auth(&self, step: &str) -> Result<(HeaderName, HeaderValue), ForgeError> {
        let token = crate::secret::read(&self.token_file).map_err(|e| {
            self.error(
                ForgeErrorKind::Auth,
                step,
                format!("git.forge.tokenFile: {e}"),
            )
        })?;
        let token = token.trim();
        let (name, value) = match self.scheme {
            Scheme::Bearer => (reqwest::header::AUTHORIZATION, format!("Bearer {token}")),
            Scheme::PrivateToken => (HeaderName::from_static("private-token"), token.to_string()),
            Scheme::Token => (reqwest::header::AUTHORIZATION, format!("token {token}")),
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            self.error(
                ForgeErrorKind::Auth,
                step,
                "the token holds characters a header cannot".into(),
            )
        })?;
        value.set_sensitive(true);
        Ok((name, value))
    }

    /// `method` on the project URL + `suffix` (`/pulls?query`, `/pulls/7`), with a JSON
    /// `body`; the answer's JSON, or the failure classified.
    pub async fn call(
        &self,
        method: reqwest::Method,
        suffix: &str,
        body: Option<Value>,
        step: &str,
    ) -> Result<Value, ForgeError> {
        let (name, value) = self.auth(step)?;
        let mut req = self
            .http
            .request(method, format!("{}{suffix}", self.project))
            .header(name, value);
        for (k, v) in self.headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(&b).unwrap_or_default());
        }
        let fail = |kind, detail: String| self.error(kind, step, detail);
        let resp = req.send().await.map_err(|e| {
            let what = if e.is_timeout() {
                "timed out"
            } else {
                "cannot connect"
            };
            fail(ForgeErrorKind::Network, what.into())
        })?;
        let status = resp.status();
        let limited = resp
            .headers()
            .get("x-ratelimit-remaining")
            .is_some_and(|v| v == "0");
        let text = self.read_bounded(resp, step).await?;
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| match &v["message"] {
                Value::String(m) => Some(m.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            })
            .unwrap_or_default();
        let detail = format!("{status} {message}").trim().to_string();
        match status.as_u16() {
            200..=299 => serde_json::from_str(&text)
                .map_err(|_| fail(ForgeErrorKind::Invalid, "the answer is not JSON".into())),
            429 => Err(fail(
                ForgeErrorKind::Network,
                format!("rate limited: {detail}"),
            )),
            403 if limited => Err(fail(
                ForgeErrorKind::Network,
                format!("rate limited: {detail}"),
            )),
            401 | 403 => Err(fail(ForgeErrorKind::Auth, detail)),
            404 => Err(fail(ForgeErrorKind::NotFound, detail)),
            409 | 422 => Err(fail(ForgeErrorKind::Rejected, detail)),
            _ => Err(fail(ForgeErrorKind::Network, detail)),
        }
    }

    /// An answer's text, at most [`MAX_ANSWER`] bytes of it: a longer one is refused, as
    /// soon as it says or shows that it is longer.
    async fn read_bounded(
        &self,
        mut resp: reqwest::Response,
        step: &str,
    ) -> Result<String, ForgeError> {
        let too_large = || {
            self.error(
                ForgeErrorKind::Invalid,
                step,
                format!(
                    "the answer is larger than the {} MiB a forge answer may be",
                    MAX_ANSWER >> 20
                ),
            )
        };
        if resp.content_length().is_some_and(|n| n > MAX_ANSWER as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        loop {
            let chunk = resp.chunk().await.map_err(|_| {
                self.error(
                    ForgeErrorKind::Network,
                    step,
                    "the answer was cut off".into(),
                )
            })?;
            let Some(chunk) = chunk else { break };
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// `GET` the project URL + `path`, read as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str, step: &str) -> Result<T, ForgeError> {
        let answer = self.call(reqwest::Method::GET, path, None, step).await?;
        self.parse(answer, step)
    }

    /// One JSON answer read as `T`.
    pub fn parse<T: DeserializeOwned>(&self, value: Value, step: &str) -> Result<T, ForgeError> {
        serde_json::from_value(value).map_err(|_| {
            self.error(
                ForgeErrorKind::Invalid,
                step,
                "the answer is not the pull request the API promises".into(),
            )
        })
    }

    /// The first element of a JSON list answer, read as `T`.
    pub fn first<T: DeserializeOwned>(
        &self,
        list: Value,
        step: &str,
    ) -> Result<Option<T>, ForgeError> {
        match list.as_array().and_then(|a| a.first()) {
            None => Ok(None),
            Some(first) => self.parse(first.clone(), step).map(Some),
        }
    }
}
