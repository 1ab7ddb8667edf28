//! GitHub's REST API (and GitHub Enterprise's, under `https://HOST/api/v3`): pull requests
//! listed by head branch, opened, and updated. Headers as GitHub documents them:
//! `Authorization: Bearer`, `Accept: application/vnd.github+json`,
//! `X-GitHub-Api-Version: 2022-11-28`.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::json;

use super::{
    Call, Forge, ForgeError, ForgeSetupError, PrState, PullRequest, client, host_of, read_token,
    send,
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
        Ok(Self {
            http: client()?,
            api: api.trim_end_matches('/').to_string(),
            owner: owner.to_string(),
            repo: repo.to_string(),
            token_file,
            name: format!("github ({})", host_of(api)),
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
        let req = self
            .http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(token)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28");
        send(req, body, &self.name, step).await
    }

    fn pulls(&self) -> String {
        format!("/repos/{}/{}/pulls", self.owner, self.repo)
    }
}

fn parse(value: serde_json::Value, forge: &str, step: &str) -> Result<PullRequest, ForgeError> {
    super::parse::<Pull>(value, forge, step).map(PullRequest::from)
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
