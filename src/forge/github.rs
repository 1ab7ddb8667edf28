//! GitHub's REST API (and GitHub Enterprise's, under `https://HOST/api/v3`): pull requests
//! listed by head branch, opened, and updated; those associated with a commit
//! (`/commits/{sha}/pulls`), for when it was merged. Headers as GitHub documents them:
//! `Authorization: Bearer`, `Accept: application/vnd.github+json`,
//! `X-GitHub-Api-Version: 2022-11-28`.

use std::path::PathBuf;

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::api::{Api, Scheme};
use super::{Call, Forge, ForgeSetupError, PrState, PullRequest, first_merge, owner_and_name};

/// A GitHub repository's pull requests.
pub struct GitHub {
    api: Api,
    owner: String,
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

/// A pull request as the commit lookup needs it.
#[derive(Deserialize)]
struct Merge {
    #[serde(default)]
    merged_at: Option<String>,
    base: Base,
}

#[derive(Deserialize)]
struct Base {
    #[serde(rename = "ref")]
    branch: String,
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
        let (owner, repo) = owner_and_name(project)?;
        let headers = &[
            ("Accept", "application/vnd.github+json"),
            ("X-GitHub-Api-Version", "2022-11-28"),
        ];
        Ok(Self {
            api: Api::new(
                "github",
                api,
                &format!("/repos/{owner}/{repo}"),
                token_file,
                Scheme::Bearer,
                headers,
            )?,
            owner: owner.to_string(),
        })
    }
}

impl Forge for GitHub {
    fn find<'a>(&'a self, branch: &'a str) -> Call<'a, Option<PullRequest>> {
        Box::pin(async move {
            let step = format!("finding the pull request from {branch}");
            // Newest first: the first one is the one that counts.
            let query = format!(
                "/pulls?state=all&head={}:{branch}&sort=created&direction=desc&per_page=10",
                self.owner
            );
            let list = self.api.call(Method::GET, &query, None, &step).await?;
            Ok(self.api.first::<Pull>(list, &step)?.map(Into::into))
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
            let fields = json!({ "title": title, "head": branch, "base": base, "body": body });
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
            let path = format!("/commits/{commit}/pulls");
            let merges: Vec<Merge> = self.api.get(&path, &step).await?;
            Ok(first_merge(
                merges
                    .iter()
                    .map(|m| (m.base.branch.as_str(), m.merged_at.as_deref())),
                base,
            ))
        })
    }
}
