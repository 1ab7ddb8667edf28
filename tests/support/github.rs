//! A stand-in for GitHub's REST API, because no real GitHub can run here. It implements
//! the pull-request calls tagpromoter makes as GitHub documents them — `GET
//! /repos/{owner}/{repo}/pulls?state=all&head=owner:branch` (newest first), `POST …/pulls`
//! (`title`, `head`, `base`, `body`; 422 when an open one exists for the head), `PATCH
//! …/pulls/{number}` — and refuses requests without `Authorization: Bearer <token>`,
//! `Accept: application/vnd.github+json` or `X-GitHub-Api-Version`. Tests merge and close
//! pull requests as a person would, and can make the next call fail.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, patch};
use axum::{Json, Router};
use serde_json::{Value, json};

/// One pull request as the stand-in keeps it.
#[derive(Debug, Clone)]
pub struct Pr {
    pub number: u64,
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: String,
    pub state: &'static str,
    pub merged: bool,
}

#[derive(Default)]
struct Inner {
    token: String,
    prs: Vec<Pr>,
    calls: Vec<String>,
    fail_next: Option<u16>,
}

/// A running stand-in.
#[derive(Clone)]
pub struct GitHubStandIn {
    /// Its API base URL.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

type Shared = Arc<Mutex<Inner>>;

type Refusal = (StatusCode, Json<Value>);

fn check(inner: &mut Inner, headers: &HeaderMap, call: String) -> Result<(), Refusal> {
    inner.calls.push(call);
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    let refuse =
        |status: StatusCode, message: &str| Err((status, Json(json!({ "message": message }))));
    if header("authorization") != format!("Bearer {}", inner.token) {
        return refuse(StatusCode::UNAUTHORIZED, "Bad credentials");
    }
    if header("accept") != "application/vnd.github+json"
        || header("x-github-api-version").is_empty()
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            "missing Accept or X-GitHub-Api-Version",
        );
    }
    if let Some(status) = inner.fail_next.take() {
        return refuse(StatusCode::from_u16(status).unwrap(), "Server Error");
    }
    Ok(())
}

fn render(pr: &Pr, url: &str) -> Value {
    json!({
        "number": pr.number,
        "html_url": format!("{url}/acme/deploys/pull/{}", pr.number),
        "state": pr.state,
        "merged_at": if pr.merged { Value::String("2026-11-22T00:00:00Z".into()) } else { Value::Null },
        "title": pr.title,
        "body": pr.body,
        "head": {"ref": pr.head},
        "base": {"ref": pr.base},
    })
}

impl GitHubStandIn {
    /// Start one that accepts `token`, serving `/repos/acme/deploys`.
    pub async fn start(token: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let inner: Shared = Arc::new(Mutex::new(Inner {
            token: token.to_string(),
            ..Inner::default()
        }));
        let base = url.clone();
        let list_url = url.clone();
        let app = Router::new()
            .route(
                "/repos/acme/deploys/pulls",
                get(move |State(s): State<Shared>, headers: HeaderMap, Query(q): Query<std::collections::HashMap<String, String>>| {
                    let url = list_url.clone();
                    async move {
                        let mut inner = s.lock().unwrap();
                        if let Err(r) = check(&mut inner, &headers, format!("GET pulls head={}", q.get("head").cloned().unwrap_or_default())) {
                            return r.into_response();
                        }
                        let head = q.get("head").and_then(|h| h.split_once(':')).map(|(_, b)| b.to_string());
                        let mut list: Vec<Value> = inner
                            .prs
                            .iter()
                            .filter(|p| head.as_deref().is_none_or(|h| h == p.head))
                            .filter(|p| q.get("state").map(String::as_str) == Some("all") || p.state == "open")
                            .map(|p| render(p, &url))
                            .collect();
                        if q.get("direction").map(String::as_str) == Some("desc") {
                            list.reverse();
                        }
                        Json(Value::Array(list)).into_response()
                    }
                })
                .post(move |State(s): State<Shared>, headers: HeaderMap, Json(body): Json<Value>| {
                    let url = base.clone();
                    async move {
                        let mut inner = s.lock().unwrap();
                        if let Err(r) = check(&mut inner, &headers, "POST pulls".into()) {
                            return r.into_response();
                        }
                        let field = |k: &str| body[k].as_str().map(str::to_string);
                        let (Some(title), Some(head), Some(base)) = (field("title"), field("head"), field("base")) else {
                            return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"message": "Validation Failed"}))).into_response();
                        };
                        if inner.prs.iter().any(|p| p.head == head && p.state == "open") {
                            return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"message": "A pull request already exists"}))).into_response();
                        }
                        let pr = Pr {
                            number: inner.prs.len() as u64 + 1,
                            head,
                            base,
                            title,
                            body: field("body").unwrap_or_default(),
                            state: "open",
                            merged: false,
                        };
                        let out = render(&pr, &url);
                        inner.prs.push(pr);
                        (StatusCode::CREATED, Json(out)).into_response()
                    }
                }),
            )
            .route(
                "/repos/acme/deploys/pulls/{number}",
                patch({
                    let url = url.clone();
                    move |State(s): State<Shared>, headers: HeaderMap, Path(number): Path<u64>, Json(body): Json<Value>| {
                        let url = url.clone();
                        async move {
                            let mut inner = s.lock().unwrap();
                            if let Err(r) = check(&mut inner, &headers, format!("PATCH pulls/{number}")) {
                                return r.into_response();
                            }
                            let Some(pr) = inner.prs.iter_mut().find(|p| p.number == number) else {
                                return (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response();
                            };
                            if let Some(t) = body["title"].as_str() {
                                pr.title = t.to_string();
                            }
                            if let Some(b) = body["body"].as_str() {
                                pr.body = b.to_string();
                            }
                            Json(render(pr, &url)).into_response()
                        }
                    }
                }),
            )
            .with_state(Arc::clone(&inner));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, inner }
    }

    /// The pull requests.
    pub fn prs(&self) -> Vec<Pr> {
        self.inner.lock().unwrap().prs.clone()
    }

    /// The calls made, in order (`POST pulls`, `PATCH pulls/1`, …).
    pub fn calls(&self) -> Vec<String> {
        self.inner.lock().unwrap().calls.clone()
    }

    /// A person merges or closes pull request `number`.
    pub fn finish(&self, number: u64, merged: bool) {
        let mut inner = self.inner.lock().unwrap();
        if let Some(pr) = inner.prs.iter_mut().find(|p| p.number == number) {
            pr.state = "closed";
            pr.merged = merged;
        }
    }

    /// The next call answers `status`.
    pub fn fail_next(&self, status: u16) {
        self.inner.lock().unwrap().fail_next = Some(status);
    }
}
