//! GitLab's REST API v4 (`apiUrl` like `https://gitlab.com/api/v4`): merge requests listed
//! by source branch, opened, and updated; those of a commit
//! (`/repository/commits/{sha}/merge_requests`), for when it was merged; `PRIVATE-TOKEN`
//! authentication; the project named by its URL-encoded path.

use std::path::PathBuf;

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::api::{Api, Scheme};
use super::{Call, Forge, ForgeSetupError, PrState, PullRequest, first_merge};

/// A GitLab project's merge requests.
pub struct GitLab {
    api: Api,
}

#[derive(Deserialize)]
struct MergeRequest {
    iid: u64,
    /// Where its branch lives: a fork's id differs from the target project's.
    source_project_id: u64,
    target_project_id: u64,
    web_url: String,
    state: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: Option<String>,
}

/// A merge request as the commit lookup needs it.
#[derive(Deserialize)]
struct Merge {
    state: String,
    #[serde(default)]
    merged_at: Option<String>,
    target_branch: String,
}

impl From<MergeRequest> for PullRequest {
    fn from(m: MergeRequest) -> Self {
        let state = match m.state.as_str() {
            "opened" | "locked" => PrState::Open,
            "merged" => PrState::Merged,
            _ => PrState::Closed,
        };
        Self {
            number: m.iid,
            url: m.web_url,
            state,
            title: m.title,
            body: m.description.unwrap_or_default(),
        }
    }
}

/// `group/sub/project` as GitLab wants it in a path: `/` as `%2F`.
fn encode_path(project: &str) -> String {
    project
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl GitLab {
    /// The project `project` (`group/name`) at the API `api`.
    pub fn new(api: &str, project: &str, token_file: PathBuf) -> Result<Self, ForgeSetupError> {
        if !project.contains('/') {
            return Err(ForgeSetupError(format!(
                "project {project:?} is not group/name"
            )));
        }
        let path = format!("/projects/{}", encode_path(project));
        Ok(Self {
            api: Api::new("gitlab", api, &path, token_file, Scheme::PrivateToken, &[])?,
        })
    }
}

impl Forge for GitLab {
    fn find<'a>(&'a self, branch: &'a str) -> Call<'a, Option<PullRequest>> {
        Box::pin(async move {
            let step = format!("finding the merge request from {branch}");
            let query = format!(
                "/merge_requests?source_branch={}&state=all&order_by=created_at&sort=desc&per_page=100",
                encode_path(branch)
            );
            let list = self.api.call(Method::GET, &query, None, &step).await?;
            // A fork's merge request from a branch of the same name is not ours.
            let requests: Vec<MergeRequest> = self.api.parse(list, &step)?;
            Ok(requests
                .into_iter()
                .find(|m| m.source_project_id == m.target_project_id)
                .map(Into::into))
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
            let step = format!("opening a merge request from {branch}");
            let fields = json!({
                "source_branch": branch,
                "target_branch": base,
                "title": title,
                "description": body,
            });
            let made = self
                .api
                .call(Method::POST, "/merge_requests", Some(fields), &step)
                .await?;
            self.api.parse::<MergeRequest>(made, &step).map(Into::into)
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
            let step = format!("updating merge request !{number}");
            let mut fields = json!({ "title": title, "description": body });
            if close {
                fields["state_event"] = json!("close");
            }
            let made = self
                .api
                .call(
                    Method::PUT,
                    &format!("/merge_requests/{number}"),
                    Some(fields),
                    &step,
                )
                .await?;
            self.api.parse::<MergeRequest>(made, &step).map(Into::into)
        })
    }

    fn merged_at<'a>(
        &'a self,
        commit: &'a str,
        base: &'a str,
    ) -> Call<'a, Option<jiff::Timestamp>> {
        Box::pin(async move {
            let step = format!("finding the merge request that merged {commit}");
            let path = format!("/repository/commits/{commit}/merge_requests");
            let merges: Vec<Merge> = self.api.get(&path, &step).await?;
            Ok(first_merge(
                merges
                    .iter()
                    .filter(|m| m.state == "merged")
                    .map(|m| (m.target_branch.as_str(), m.merged_at.as_deref())),
                base,
            ))
        })
    }
}
