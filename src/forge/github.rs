//! GitHub's REST API (and GitHub Enterprise's, under `https://HOST/api/v3`): pull requests
//! listed by head branch, opened, and updated. Headers as GitHub documents them:
//! `Authorization: Bearer`, `Accept: application/vnd.github+json`,
//! `X-GitHub-Api-Version: 2022-11-28`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::{
    Call, Forge, ForgeError, ForgeErrorKind, ForgeSetupError, PrState, PullRequest, read_token,
};

/// A GitHub repository's pull requests.
pub struct GitHub {
    http: reqwest::Client,
    api: String,
    owner: String,
    repo: String,
    token_file: PathBuf,
    name: String,
}

#[derive(Deserialize)]
struct Pull {
    number: u64,
    html_url: String,
    state: String,
    #[serde(default)]
    merged_at: Option<String>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    body: Option<String>,
}

impl From<Pull> for PullRequest {
    fn from(p: Pull) -> Self {
        let state = match (p.state.as_str(), &p.merged_at) {
            ("open", _) => PrState::Open,
            (_, Some(_)) => PrState::Merged,
            _ => PrState::Closed,
        };
        Self {
            number: p.number,
            url: p.html_url,
            state,
            title: p.title,
            body: p.body.unwrap_or_default(),
        }
    }
}

impl GitHub {
    /// The repository `project` (`owner/name`) at the API `api` (`https://api.github.com`).
    pub fn new(api: &str, project: &str, token_file: PathBuf) -> Result<Self, ForgeSetupError> {
        let (owner, repo) = project
            .split_once('/')
            .ok_or_else(|| ForgeSetupError(format!("project {project:?} is not owner/name")))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("tagpromoter/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ForgeSetupError(format!("cannot build the HTTP client: {e}")))?;
        let host = reqwest::Url::parse(api)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        Ok(Self {
            http,
            api: api.trim_end_matches('/').to_string(),
            owner: owner.to_string(),
            repo: repo.to_string(),
            token_file,
            name: format!("github ({host})"),
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
        step: &str,
    ) -> Result<serde_json::Value, ForgeError> {
        let token = read_token(&self.token_file, &self.name, step)?;
        let fail = |kind, detail: String| ForgeError {
            kind,
            forge: self.name.clone(),
            step: step.to_string(),
            detail,
        };
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(token)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28");
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(&b).unwrap_or_default());
        }
        let resp = req.send().await.map_err(|e| {
            fail(
                ForgeErrorKind::Network,
                if e.is_timeout() {
                    "timed out".into()
                } else {
                    "cannot connect".into()
                },
            )
        })?;
        let status = resp.status();
        let limited = resp
            .headers()
            .get("x-ratelimit-remaining")
            .is_some_and(|v| v == "0");
        let text = resp.text().await.unwrap_or_default();
        // GitHub's error bodies carry a `message`; keep it (never the request).
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_default();
        let detail = format!("{status} {message}").trim().to_string();
        match status.as_u16() {
            200..=299 => serde_json::from_str(&text)
                .map_err(|_| fail(ForgeErrorKind::Network, "the answer is not JSON".into())),
            403 | 429 if limited || status.as_u16() == 429 => Err(fail(
                ForgeErrorKind::Network,
                format!("rate limited: {detail}"),
            )),
            401 | 403 => Err(fail(ForgeErrorKind::Auth, detail)),
            404 => Err(fail(ForgeErrorKind::NotFound, detail)),
            422 => Err(fail(ForgeErrorKind::Rejected, detail)),
            _ => Err(fail(ForgeErrorKind::Network, detail)),
        }
    }

    fn pulls(&self) -> String {
        format!("/repos/{}/{}/pulls", self.owner, self.repo)
    }
}

fn parse(value: serde_json::Value, forge: &str, step: &str) -> Result<PullRequest, ForgeError> {
    serde_json::from_value::<Pull>(value)
        .map(PullRequest::from)
        .map_err(|_| ForgeError {
            kind: ForgeErrorKind::Network,
            forge: forge.to_string(),
            step: step.to_string(),
            detail: "the answer is not a pull request".into(),
        })
}

impl Forge for GitHub {
    fn find<'a>(&'a self, branch: &'a str) -> Call<'a, Option<PullRequest>> {
        Box::pin(async move {
            let step = format!("finding the pull request from {branch}");
            // Newest first: the first one is the one that counts.
            let path = format!(
                "{}?state=all&head={}:{branch}&sort=created&direction=desc&per_page=10",
                self.pulls(),
                self.owner
            );
            let list = self.call(reqwest::Method::GET, &path, None, &step).await?;
            match list.as_array().and_then(|a| a.first()) {
                None => Ok(None),
                Some(first) => parse(first.clone(), &self.name, &step).map(Some),
            }
        })
    }

    fn open<'a>(
        &'a self,
        branch: &'a str,
        base: &'a str,
        title: &'a str,
        body: &'a str,
    ) -> Call<'a, PullRequest> {
        Box::pin(async move {
            let step = format!("opening a pull request from {branch}");
            let made = self
                .call(
                    reqwest::Method::POST,
                    &self.pulls(),
                    Some(json!({ "title": title, "head": branch, "base": base, "body": body })),
                    &step,
                )
                .await?;
            parse(made, &self.name, &step)
        })
    }

    fn update<'a>(&'a self, number: u64, title: &'a str, body: &'a str) -> Call<'a, PullRequest> {
        Box::pin(async move {
            let step = format!("updating pull request #{number}");
            let made = self
                .call(
                    reqwest::Method::PATCH,
                    &format!("{}/{number}", self.pulls()),
                    Some(json!({ "title": title, "body": body })),
                    &step,
                )
                .await?;
            parse(made, &self.name, &step)
        })
    }
}
