//! Stand-ins for the forges' REST APIs, because no real GitHub, GitLab or Gitea can run
//! here. Each dialect implements the pull-request calls tagpromoter makes, as its forge
//! documents them, and refuses what the forge would refuse:
//! - GitHub: `GET|POST /repos/{o}/{r}/pulls` (`state=all&head=o:branch`, newest first;
//!   `title`, `head`, `base`, `body`), `PATCH /repos/{o}/{r}/pulls/{n}`; `Authorization:
//!   Bearer`, `Accept: application/vnd.github+json`, `X-GitHub-Api-Version`.
//! - GitLab: `GET|POST /api/v4/projects/{url-encoded path}/merge_requests` (`source_branch`,
//!   `state=all`; `source_branch`, `target_branch`, `title`, `description`; `iid`, `web_url`,
//!   `state` opened|closed|merged), `PUT …/merge_requests/{iid}`; `PRIVATE-TOKEN`; 409 for a
//!   second open merge request from one branch.
//! - Gitea: `GET|POST /api/v1/repos/{o}/{r}/pulls` (`state=all&sort=newest&page&limit`, no
//!   head filter; `head`, `base`, `title`, `body`; `merged`, `head.ref`), `PATCH
//!   …/pulls/{n}`; `Authorization: token`.
//!
//! - The pull requests of a commit: GitHub `GET /repos/{o}/{r}/commits/{sha}/pulls`, GitLab
//!   `GET …/repository/commits/{sha}/merge_requests` (`merged_at`, `target_branch`), Gitea
//!   `GET …/commits/{sha}/pull` (one, or 404; `merged_at`, `merge_commit_sha`, `head.sha`).
//!
//! - Pull requests from forks (`fork_opens`): GitHub's `head=owner:branch` matches the owner's
//!   branch only; GitLab marks them by `source_project_id` ≠ `target_project_id`; Gitea by
//!   `head.repo` ≠ `base.repo`.
//!
//! Tests merge and close pull requests as a person would, and can make the next call fail.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::{Value, json};

/// Which forge a stand-in speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    GitHub,
    GitLab,
    Gitea,
}

impl Dialect {
    /// The `kind` in Settings.git.forge.
    pub fn kind(self) -> &'static str {
        match self {
            Self::GitHub => "github",
            Self::GitLab => "gitlab",
            Self::Gitea => "gitea",
        }
    }
}

/// One pull request as the stand-in keeps it.
#[derive(Debug, Clone)]
pub struct Pr {
    pub number: u64,
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: String,
    pub open: bool,
    pub merged: bool,
    /// The commit at its head when it was merged, and when (set by [`ForgeStandIn::merge_at`]).
    pub head_sha: Option<String>,
    pub merged_at: Option<String>,
    /// The owner of the fork it comes from (`None`: from `acme/deploys` itself).
    pub fork: Option<String>,
}

impl Pr {
    /// The project its branch lives in.
    fn source(&self) -> String {
        match &self.fork {
            Some(owner) => format!("{owner}/deploys"),
            None => "acme/deploys".into(),
        }
    }
}

struct Inner {
    dialect: Dialect,
    url: String,
    token: String,
    prs: Vec<Pr>,
    calls: Vec<String>,
    fail_next: Option<u16>,
}

type Shared = Arc<Mutex<Inner>>;
type Answer = (StatusCode, Json<Value>);

/// A running stand-in.
#[derive(Clone)]
pub struct ForgeStandIn {
    /// The API base URL to put in `apiUrl`.
    pub api_url: String,
    inner: Shared,
}

fn refuse(status: StatusCode, message: &str) -> Answer {
    (status, Json(json!({ "message": message })))
}

impl Inner {
    fn authorized(&mut self, headers: &HeaderMap) -> Result<(), Answer> {
        let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
        let ok = match self.dialect {
            Dialect::GitHub => {
                if header("accept") != "application/vnd.github+json"
                    || header("x-github-api-version").is_empty()
                {
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        "missing Accept or X-GitHub-Api-Version",
                    ));
                }
                header("authorization") == format!("Bearer {}", self.token)
            }
            Dialect::GitLab => header("private-token") == self.token,
            Dialect::Gitea => header("authorization") == format!("token {}", self.token),
        };
        if !ok {
            let message = match self.dialect {
                Dialect::GitLab => "401 Unauthorized",
                _ => "Bad credentials",
            };
            return Err(refuse(StatusCode::UNAUTHORIZED, message));
        }
        if let Some(status) = self.fail_next.take() {
            return Err(refuse(
                StatusCode::from_u16(status).unwrap(),
                "Server Error",
            ));
        }
        Ok(())
    }

    fn render(&self, pr: &Pr) -> Value {
        let url = format!("{}/acme/deploys/pull/{}", self.url, pr.number);
        let merged_at = match (&pr.merged_at, pr.merged) {
            (Some(at), _) => json!(at),
            (None, true) => json!("2026-11-22T00:00:00Z"),
            (None, false) => Value::Null,
        };
        match self.dialect {
            Dialect::GitHub => json!({
                "number": pr.number, "html_url": url, "title": pr.title, "body": pr.body,
                "state": if pr.open { "open" } else { "closed" },
                "merged_at": merged_at,
                "head": {"ref": pr.head, "sha": pr.head_sha, "repo": {"full_name": pr.source()}},
                "base": {"ref": pr.base, "repo": {"full_name": "acme/deploys"}},
            }),
            Dialect::GitLab => json!({
                "iid": pr.number, "web_url": url, "title": pr.title, "description": pr.body,
                "state": if pr.open { "opened" } else if pr.merged { "merged" } else { "closed" },
                "source_branch": pr.head, "target_branch": pr.base, "merged_at": merged_at,
                "sha": pr.head_sha, "project_id": 1, "target_project_id": 1,
                "source_project_id": if pr.fork.is_some() { 99 } else { 1 },
            }),
            Dialect::Gitea => json!({
                "number": pr.number, "html_url": url, "title": pr.title, "body": pr.body,
                "state": if pr.open { "open" } else { "closed" }, "merged": pr.merged,
                "merged_at": merged_at,
                "merge_commit_sha": if pr.merged { json!(pr.head_sha) } else { Value::Null },
                "head": {"ref": pr.head, "sha": pr.head_sha, "repo": {"full_name": pr.source()}},
                "base": {"ref": pr.base, "repo": {"full_name": "acme/deploys"}},
            }),
        }
    }

    fn list(&self, q: &HashMap<String, String>) -> Result<Value, Answer> {
        if q.get("state").map(String::as_str) != Some("all") {
            return Err(refuse(StatusCode::BAD_REQUEST, "expected state=all"));
        }
        // GitHub's `head` is `owner:branch` and matches that owner's branch only.
        let (owner, head) = match self.dialect {
            Dialect::GitHub => match q.get("head").and_then(|h| h.split_once(':')) {
                Some((o, b)) => (Some(o.to_string()), Some(b.to_string())),
                None => (None, None),
            },
            Dialect::GitLab => (None, q.get("source_branch").cloned()),
            Dialect::Gitea => (None, None),
        };
        let mut newest_first: Vec<&Pr> = self
            .prs
            .iter()
            .rev()
            .filter(|p| head.as_deref().is_none_or(|h| h == p.head))
            .filter(|p| {
                owner
                    .as_deref()
                    .is_none_or(|o| p.source().split('/').next() == Some(o))
            })
            .collect();
        if self.dialect == Dialect::Gitea {
            // Pages of `limit` (Gitea caps it at 50), counted from 1.
            let limit: usize = q
                .get("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(30)
                .min(50);
            let page: usize = q
                .get("page")
                .and_then(|p| p.parse().ok())
                .unwrap_or(1)
                .max(1);
            newest_first = newest_first
                .into_iter()
                .skip((page - 1) * limit)
                .take(limit)
                .collect();
        }
        Ok(Value::Array(
            newest_first.into_iter().map(|p| self.render(p)).collect(),
        ))
    }

    fn create(&mut self, body: &Value) -> Result<Value, Answer> {
        let field = |k: &str| body[k].as_str().map(str::to_string);
        let (head, base, text) = match self.dialect {
            Dialect::GitLab => (
                field("source_branch"),
                field("target_branch"),
                field("description"),
            ),
            _ => (field("head"), field("base"), field("body")),
        };
        let (Some(head), Some(base), Some(title)) = (head, base, field("title")) else {
            return Err(refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Validation Failed",
            ));
        };
        if self
            .prs
            .iter()
            .any(|p| p.head == head && p.open && p.fork.is_none())
        {
            let status = match self.dialect {
                Dialect::GitLab => StatusCode::CONFLICT,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            return Err(refuse(
                status,
                "A pull request already exists for this branch",
            ));
        }
        let pr = Pr {
            number: self.prs.len() as u64 + 1,
            head,
            base,
            title,
            body: text.unwrap_or_default(),
            open: true,
            merged: false,
            head_sha: None,
            merged_at: None,
            fork: None,
        };
        let out = self.render(&pr);
        self.prs.push(pr);
        Ok(out)
    }

    fn edit(&mut self, number: u64, body: &Value) -> Result<Value, Answer> {
        let text_key = if self.dialect == Dialect::GitLab {
            "description"
        } else {
            "body"
        };
        let Some(pr) = self.prs.iter_mut().find(|p| p.number == number) else {
            return Err(refuse(StatusCode::NOT_FOUND, "Not Found"));
        };
        if let Some(t) = body["title"].as_str() {
            pr.title = t.to_string();
        }
        if let Some(b) = body[text_key].as_str() {
            pr.body = b.to_string();
        }
        // Closing unmerged: `state: closed` (GitHub, Gitea), `state_event: close` (GitLab).
        if body["state"] == "closed" || body["state_event"] == "close" {
            pr.open = false;
        }
        let pr = pr.clone();
        Ok(self.render(&pr))
    }
}

fn answer(result: Result<Value, Answer>, created: bool) -> axum::response::Response {
    match result {
        Ok(v) if created => (StatusCode::CREATED, Json(v)).into_response(),
        Ok(v) => Json(v).into_response(),
        Err(a) => a.into_response(),
    }
}

async fn collection(
    State(s): State<Shared>,
    method: Method,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> axum::response::Response {
    let mut inner = s.lock().unwrap();
    inner.calls.push(format!(
        "{method} list {}",
        q.get("head")
            .or(q.get("source_branch"))
            .cloned()
            .unwrap_or_default()
    ));
    if let Err(a) = inner.authorized(&headers) {
        return a.into_response();
    }
    match method {
        Method::GET => answer(inner.list(&q), false),
        Method::POST => {
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            answer(inner.create(&body), true)
        }
        _ => refuse(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed").into_response(),
    }
}

async fn item(
    State(s): State<Shared>,
    method: Method,
    headers: HeaderMap,
    Path(number): Path<u64>,
    body: Bytes,
) -> axum::response::Response {
    let mut inner = s.lock().unwrap();
    inner.calls.push(format!("{method} {number}"));
    if let Err(a) = inner.authorized(&headers) {
        return a.into_response();
    }
    let allowed = match inner.dialect {
        Dialect::GitLab => Method::PUT,
        _ => Method::PATCH,
    };
    if method != allowed {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed").into_response();
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    answer(inner.edit(number, &body), false)
}

/// The pull requests of a commit: GitHub's and GitLab's lists of those whose head it is;
/// Gitea's one merged pull request, or, as Gitea itself may (go-gitea/gitea#32027), the
/// newest merged one whatever the commit.
async fn of_commit(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(sha): Path<String>,
) -> axum::response::Response {
    let mut inner = s.lock().unwrap();
    inner.calls.push(format!("GET commit {sha}"));
    if let Err(a) = inner.authorized(&headers) {
        return a.into_response();
    }
    let of_commit: Vec<&Pr> = inner
        .prs
        .iter()
        .filter(|p| p.head_sha.as_deref() == Some(sha.as_str()))
        .collect();
    if inner.dialect != Dialect::Gitea {
        let list = of_commit.iter().map(|p| inner.render(p)).collect();
        return Json(Value::Array(list)).into_response();
    }
    let merged = of_commit
        .into_iter()
        .find(|p| p.merged)
        .or_else(|| inner.prs.iter().rev().find(|p| p.merged));
    match merged {
        Some(p) => Json(inner.render(p)).into_response(),
        None => refuse(StatusCode::NOT_FOUND, "Not Found").into_response(),
    }
}

impl ForgeStandIn {
    /// Start one for `dialect` that accepts `token`, serving the project `acme/deploys`.
    pub async fn start(dialect: Dialect, token: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (prefix, collection_path, commit_path) = match dialect {
            Dialect::GitHub => (
                "",
                "/repos/acme/deploys/pulls",
                "/repos/acme/deploys/commits/{sha}/pulls",
            ),
            Dialect::GitLab => (
                "/api/v4",
                "/api/v4/projects/acme%2Fdeploys/merge_requests",
                "/api/v4/projects/acme%2Fdeploys/repository/commits/{sha}/merge_requests",
            ),
            Dialect::Gitea => (
                "/api/v1",
                "/api/v1/repos/acme/deploys/pulls",
                "/api/v1/repos/acme/deploys/commits/{sha}/pull",
            ),
        };
        let inner: Shared = Arc::new(Mutex::new(Inner {
            dialect,
            url: url.clone(),
            token: token.to_string(),
            prs: Vec::new(),
            calls: Vec::new(),
            fail_next: None,
        }));
        let app = Router::new()
            .route(collection_path, get(collection).post(collection))
            .route(&format!("{collection_path}/{{number}}"), any(item))
            .route(commit_path, get(of_commit))
            .with_state(Arc::clone(&inner));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            api_url: format!("{url}{prefix}"),
            inner,
        }
    }

    /// The pull requests, oldest first.
    pub fn prs(&self) -> Vec<Pr> {
        self.inner.lock().unwrap().prs.clone()
    }

    /// The calls made, in order (`GET list <branch>`, `POST list`, `PATCH 1`, …).
    pub fn calls(&self) -> Vec<String> {
        self.inner.lock().unwrap().calls.clone()
    }

    /// A person merges (or closes unmerged) pull request `number`.
    pub fn finish(&self, number: u64, merged: bool) {
        let mut inner = self.inner.lock().unwrap();
        if let Some(pr) = inner.prs.iter_mut().find(|p| p.number == number) {
            pr.open = false;
            pr.merged = merged;
        }
    }

    /// A person merges pull request `number` at `at` (RFC 3339), its head then `head_sha`
    /// (what a fast-forward puts on the base branch as it is).
    pub fn merge_at(&self, number: u64, head_sha: &str, at: &str) {
        let mut inner = self.inner.lock().unwrap();
        if let Some(pr) = inner.prs.iter_mut().find(|p| p.number == number) {
            pr.open = false;
            pr.merged = true;
            pr.head_sha = Some(head_sha.to_string());
            pr.merged_at = Some(at.to_string());
        }
    }

    /// Someone opens a pull request from their fork `owner/deploys`, from a branch named
    /// `head`, with our kind of title and body; left open or closed unmerged.
    pub fn fork_opens(&self, owner: &str, head: &str, title: &str, body: &str, open: bool) -> u64 {
        let mut inner = self.inner.lock().unwrap();
        let number = inner.prs.len() as u64 + 1;
        inner.prs.push(Pr {
            number,
            head: head.into(),
            base: "main".into(),
            title: title.into(),
            body: body.into(),
            open,
            merged: false,
            head_sha: None,
            merged_at: None,
            fork: Some(owner.into()),
        });
        number
    }

    /// `n` pull requests from other branches, newer than every one so far (so that a
    /// lookup has to page past them where the API cannot filter by branch).
    pub fn crowd(&self, n: usize) {
        let mut inner = self.inner.lock().unwrap();
        for i in 0..n {
            let number = inner.prs.len() as u64 + 1;
            inner.prs.push(Pr {
                number,
                head: format!("feature/{i}"),
                base: "main".into(),
                title: format!("feature {i}"),
                body: String::new(),
                open: true,
                merged: false,
                head_sha: None,
                merged_at: None,
                fork: None,
            });
        }
    }

    /// The next authorized call answers `status`.
    pub fn fail_next(&self, status: u16) {
        self.inner.lock().unwrap().fail_next = Some(status);
    }
}
