//! Gitea's and Forgejo's REST API v1 (`apiUrl` like `https://gitea.example.com/api/v1`):
//! pull requests listed newest first page by page (the list cannot filter by head branch),
//! opened, and updated; `Authorization: token` authentication.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::json;

use super::{
    Call, Forge, ForgeError, ForgeSetupError, PrState, PullRequest, client, host_of, read_token,
    send,
};

/// Pages of pull requests looked through for a branch's newest one.
const MAX_PAGES: usize = 20;
/// Pull requests per page.
const PAGE: usize = 50;

/// A Gitea (or Forgejo) repository's pull requests.
pub struct Gitea {
    http: reqwest::Client,
    api: String,
    owner: String,
    repo: String,
    token_file: PathBuf,
    name: String,
}

#[derive(Deserialize)]
struct Head {
    #[serde(rename = "ref")]
    branch: String,
}

#[derive(Deserialize)]
struct Pull {
    number: u64,
    html_url: String,
    state: String,
    #[serde(default)]
    merged: bool,
    #[serde(default)]
    title: String,
    #[serde(default)]
    body: Option<String>,
    head: Head,
}

impl From<Pull> for PullRequest {
    fn from(p: Pull) -> Self {
        let state = match (p.state.as_str(), p.merged) {
            ("open", _) => PrState::Open,
            (_, true) => PrState::Merged,
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

impl Gitea {
    /// The repository `project` (`owner/name`) at the API `api`.
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
            name: format!("gitea ({})", host_of(api)),
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
        let mut auth =
            reqwest::header::HeaderValue::from_str(&format!("token {token}")).map_err(|_| {
                ForgeError {
                    kind: super::ForgeErrorKind::Auth,
                    forge: self.name.clone(),
                    step: step.to_string(),
                    detail: "the token holds characters a header cannot".into(),
                }
            })?;
        auth.set_sensitive(true);
        let req = self
            .http
            .request(
                method,
                format!(
                    "{}/repos/{}/{}/pulls{path}",
                    self.api, self.owner, self.repo
                ),
            )
            .header(reqwest::header::AUTHORIZATION, auth);
        send(req, body, &self.name, step).await
    }
}

impl Forge for Gitea {
    fn find<'a>(&'a self, branch: &'a str) -> Call<'a, Option<PullRequest>> {
        Box::pin(async move {
            let step = format!("finding the pull request from {branch}");
            for page in 1..=MAX_PAGES {
                let query = format!("?state=all&sort=newest&page={page}&limit={PAGE}");
                let list = self.call(reqwest::Method::GET, &query, None, &step).await?;
                let items = list.as_array().cloned().unwrap_or_default();
                for item in &items {
                    let pull = super::parse::<Pull>(item.clone(), &self.name, &step)?;
                    if pull.head.branch == branch {
                        return Ok(Some(pull.into()));
                    }
                }
                if items.len() < PAGE {
                    break;
                }
            }
            Ok(None)
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
                    "",
                    Some(json!({ "head": branch, "base": base, "title": title, "body": body })),
                    &step,
                )
                .await?;
            super::parse::<Pull>(made, &self.name, &step).map(Into::into)
        })
    }

    fn update<'a>(&'a self, number: u64, title: &'a str, body: &'a str) -> Call<'a, PullRequest> {
        Box::pin(async move {
            let step = format!("updating pull request #{number}");
            let made = self
                .call(
                    reqwest::Method::PATCH,
                    &format!("/{number}"),
                    Some(json!({ "title": title, "body": body })),
                    &step,
                )
                .await?;
            super::parse::<Pull>(made, &self.name, &step).map(Into::into)
        })
    }
}
