//! Gitea's and Forgejo's REST API v1 (`apiUrl` like `https://gitea.example.com/api/v1`):
//! pull requests listed newest first page by page (the list cannot filter by head branch),
//! opened, and updated; the one that merged a commit (`/commits/{sha}/pull`);
//! `Authorization: token` authentication.

use std::path::PathBuf;

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::api::{Api, Scheme};
use super::{
    Call, Forge, ForgeErrorKind, ForgeSetupError, PrState, PullRequest, first_merge, owner_and_name,
};

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
    /// The repository the branch lives in (absent when a fork was deleted).
    #[serde(default)]
    repo: Option<RepoName>,
}

#[derive(Deserialize, PartialEq)]
struct RepoName {
    full_name: String,
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
    base: Head,
}

/// The pull request `/commits/{sha}/pull` answers. Gitea may answer with one that does not
/// contain the commit (go-gitea/gitea#32027): it counts only when its head or merge commit
/// is the commit.
#[derive(Deserialize)]
struct Merge {
    #[serde(default)]
    merged: bool,
    #[serde(default)]
    merged_at: Option<String>,
    #[serde(default)]
    merge_commit_sha: Option<String>,
    head: Sha,
    base: Head,
}

#[derive(Deserialize)]
struct Sha {
    #[serde(default)]
    sha: String,
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
        let path = format!("/repos/{owner}/{repo}");
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
                let query = format!("/pulls?state=all&sort=newest&page={page}&limit={PAGE}");
                let list = self.api.call(Method::GET, &query, None, &step).await?;
                let items = list.as_array().cloned().unwrap_or_default();
                for item in &items {
                    let pull: Pull = self.api.parse(item.clone(), &step)?;
                    // A fork's pull request from a branch of the same name is not ours.
                    let ours = pull.head.repo.is_some() && pull.head.repo == pull.base.repo;
                    if pull.head.branch == branch && ours {
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
            let made = self
                .api
                .call(Method::POST, "/pulls", Some(fields), &step)
                .await?;
            self.api.parse::<Pull>(made, &step).map(Into::into)
        })
    }

    fn update<'a>(
        &'a self,
        number: u64,
        title: &'a str,
        body: &'a str,
        close: bool,
    ) -> Call<'a, PullRequest> {
        Box::pin(async move {
            let step = format!("updating pull request #{number}");
            let mut fields = json!({ "title": title, "body": body });
            if close {
                fields["state"] = json!("closed");
            }
            let made = self
                .api
                .call(
                    Method::PATCH,
                    &format!("/pulls/{number}"),
                    Some(fields),
                    &step,
                )
                .await?;
            self.api.parse::<Pull>(made, &step).map(Into::into)
        })
    }

    fn merged_at<'a>(
        &'a self,
        commit: &'a str,
        base: &'a str,
    ) -> Call<'a, Option<jiff::Timestamp>> {
        Box::pin(async move {
            let step = format!("finding the pull request that merged {commit}");
            let path = format!("/commits/{commit}/pull");
            let merge: Merge = match self.api.get(&path, &step).await {
                Ok(merge) => merge,
                // No pull request merged it.
                Err(e) if e.kind == ForgeErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let its_own =
                merge.head.sha == commit || merge.merge_commit_sha.as_deref() == Some(commit);
            Ok(first_merge(
                (merge.merged && its_own)
                    .then_some((merge.base.branch.as_str(), merge.merged_at.as_deref())),
                base,
            ))
        })
    }
}
