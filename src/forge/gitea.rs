//! Gitea's and Forgejo's REST API v1 (`apiUrl` like `https://gitea.example.com/api/v1`):
//! pull requests listed newest first page by page (the list cannot filter by head branch),
//! opened, and updated; `Authorization: token` authentication.

use std::path::PathBuf;

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::api::{Api, Scheme};
use super::{Call, Forge, ForgeSetupError, PrState, PullRequest, owner_and_name};

/// Pages of pull requests looked through for a branch's newest one.
const MAX_PAGES: usize = 20;
/// Pull requests per page (Gitea's largest).
const PAGE: usize = 50;

/// A Gitea (or Forgejo) repository's pull requests.
pub struct Gitea {
    api: Api,
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
        let (owner, repo) = owner_and_name(project)?;
        let path = format!("/repos/{owner}/{repo}/pulls");
        Ok(Self {
            api: Api::new("gitea", api, &path, token_file, Scheme::Token, &[])?,
        })
    }
}

impl Forge for Gitea {
    fn find<'a>(&'a self, branch: &'a str) -> Call<'a, Option<PullRequest>> {
        Box::pin(async move {
            let step = format!("finding the pull request from {branch}");
            for page in 1..=MAX_PAGES {
                let query = format!("?state=all&sort=newest&page={page}&limit={PAGE}");
                let list = self.api.call(Method::GET, &query, None, &step).await?;
                let items = list.as_array().cloned().unwrap_or_default();
                for item in &items {
                    let pull: Pull = self.api.parse(item.clone(), &step)?;
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
            let fields = json!({ "head": branch, "base": base, "title": title, "body": body });
            let made = self.api.call(Method::POST, "", Some(fields), &step).await?;
            self.api.parse::<Pull>(made, &step).map(Into::into)
        })
    }

    fn update<'a>(&'a self, number: u64, title: &'a str, body: &'a str) -> Call<'a, PullRequest> {
        Box::pin(async move {
            let step = format!("updating pull request #{number}");
            let fields = json!({ "title": title, "body": body });
            let made = self
                .api
                .call(Method::PATCH, &format!("/{number}"), Some(fields), &step)
                .await?;
            self.api.parse::<Pull>(made, &step).map(Into::into)
        })
    }
}
