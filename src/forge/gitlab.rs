//! GitLab's REST API v4 (`apiUrl` like `https://gitlab.com/api/v4`): merge requests listed
//! by source branch, opened, and updated; `PRIVATE-TOKEN` authentication; the project named
//! by its URL-encoded path.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::json;

use super::{
    Call, Forge, ForgeError, ForgeSetupError, PrState, PullRequest, client, host_of, read_token,
    send,
};

/// A GitLab project's merge requests.
pub struct GitLab {
    http: reqwest::Client,
    api: String,
    project: String,
    token_file: PathBuf,
    name: String,
}

#[derive(Deserialize)]
struct MergeRequest {
    iid: u64,
    web_url: String,
    state: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: Option<String>,
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
        Ok(Self {
            http: client()?,
            api: api.trim_end_matches('/').to_string(),
            project: encode_path(project),
            token_file,
            name: format!("gitlab ({})", host_of(api)),
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
        let mut token = reqwest::header::HeaderValue::from_str(&token).map_err(|_| ForgeError {
            kind: super::ForgeErrorKind::Auth,
            forge: self.name.clone(),
            step: step.to_string(),
            detail: "the token holds characters a header cannot".into(),
        })?;
        token.set_sensitive(true);
        let req = self
            .http
            .request(
                method,
                format!(
                    "{}/projects/{}/merge_requests{path}",
                    self.api, self.project
                ),
            )
            .header("PRIVATE-TOKEN", token);
        send(req, body, &self.name, step).await
    }
}

impl Forge for GitLab {
    fn find<'a>(&'a self, branch: &'a str) -> Call<'a, Option<PullRequest>> {
        Box::pin(async move {
            let step = format!("finding the merge request from {branch}");
            let query = format!(
                "?source_branch={}&state=all&order_by=created_at&sort=desc&per_page=10",
                encode_path(branch)
            );
            let list = self.call(reqwest::Method::GET, &query, None, &step).await?;
            match list.as_array().and_then(|a| a.first()) {
                None => Ok(None),
                Some(first) => super::parse::<MergeRequest>(first.clone(), &self.name, &step)
                    .map(|m| Some(m.into())),
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
            let step = format!("opening a merge request from {branch}");
            let made = self
                .call(
                    reqwest::Method::POST,
                    "",
                    Some(json!({
                        "source_branch": branch,
                        "target_branch": base,
                        "title": title,
                        "description": body,
                    })),
                    &step,
                )
                .await?;
            super::parse::<MergeRequest>(made, &self.name, &step).map(Into::into)
        })
    }

    fn update<'a>(&'a self, number: u64, title: &'a str, body: &'a str) -> Call<'a, PullRequest> {
        Box::pin(async move {
            let step = format!("updating merge request !{number}");
            let made = self
                .call(
                    reqwest::Method::PUT,
                    &format!("/{number}"),
                    Some(json!({ "title": title, "description": body })),
                    &step,
                )
                .await?;
            super::parse::<MergeRequest>(made, &self.name, &step).map(Into::into)
        })
    }
}
