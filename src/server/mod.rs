//! The worker's HTTP server: `/` (the promotion board), `/metrics` (Prometheus text),
//! `/healthz` (alive), `/readyz` (rules loaded and a pass finished within three intervals),
//! `/status` (the JSON of `tagpromoter status`, from the last pass), and `POST
//! /webhooks/<type>` (registries and the forge asking for a pass). The board and `/status`
//! may be served on an address of their own (`run --listen-board`); what they show is
//! redacted ([`redact`]).
//!
//! It only reads what the worker shares ([`Shared`]) and rings its bell; it never runs a
//! pass or touches a registry or the repository itself, so it answers while a pass runs.

pub mod board;
pub mod connections;
pub mod redact;
mod shared;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use crate::view;

pub use shared::{Shared, Watching};

/// Every route on one address.
pub fn router(shared: Arc<Shared>) -> Router {
    service_router(Arc::clone(&shared)).merge(board_router(shared))
}

/// What the cluster needs: probes, metrics and webhook receivers.
pub fn service_router(shared: Arc<Shared>) -> Router {
    probe_router(Arc::clone(&shared)).merge(
        Router::new()
            .route(
                "/webhooks/{receiver}",
                // The handler bounds the body itself, once it knows the request may be read.
                post(webhooks::receive).layer(DefaultBodyLimit::disable()),
            )
            .with_state(shared),
    )
}

/// The kubelet's probes and Prometheus's scrape: served on an address of their own too
/// (`run --listen-probes`), so that a flood of the webhook port cannot fail them.
pub fn probe_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(shared)
}

/// What people read: the board and `/status` (read-only, unauthenticated, redacted).
pub fn board_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(board))
        .route("/status", get(status))
        .with_state(shared)
}

/// OpenMetrics when the scraper asks for it (Prometheus does), else the classic text format.
async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let open = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    if open {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            shared.metrics.encode(),
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            shared.metrics.encode_classic(),
        )
            .into_response()
    }
}

/// How long the board waits for a peer's `/status`.
const PEER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// This worker's last pass and, in a sharded fleet, each peer's (asked concurrently, at
/// most once per board refresh; a peer that does not answer is shown as such).
async fn fleet_status(shared: &Shared) -> (board::ShardStatus, Arc<Vec<board::ShardStatus>>) {
    let fleet = &shared.fleet;
    let own = shared.last().map(|(r, _)| view::status_doc(&r, None));
    let fresh = std::time::Duration::from_secs(u64::from(board::REFRESH_SECONDS));
    let peers = shared
        .peer_statuses(fresh, || async {
            let client = reqwest::Client::builder().timeout(PEER_TIMEOUT).build();
            let asks = fleet.others().map(|i| {
                let client = client.as_ref().ok();
                async move {
                    let status = match (fleet.peer(i), client) {
                        (Some(peer), Some(client)) => ask_peer(client, &peer).await,
                        _ => Err("not asked: set --peer-url to show the whole fleet".into()),
                    };
                    board::ShardStatus { index: i, status }
                }
            });
            futures_util::future::join_all(asks).await
        })
        .await;
    let own = board::ShardStatus {
        index: fleet.shard.index,
        status: own.ok_or_else(|| "no pass has finished yet".to_string()),
    };
    (own, peers)
}

/// The largest `/status` read from a peer (10,000 environments take about 10 MiB).
const PEER_STATUS_LIMIT: usize = 64 << 20;

/// A peer's `/status`, read up to [`PEER_STATUS_LIMIT`].
async fn ask_peer(client: &reqwest::Client, peer: &str) -> Result<view::StatusDoc, String> {
    let mut answer = client
        .get(format!("{peer}/status"))
        .send()
        .await
        .map_err(|e| format!("{peer} did not answer: {}", e.without_url()))?;
    if !answer.status().is_success() {
        return Err(format!("{peer} answered {}", answer.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = answer
        .chunk()
        .await
        .map_err(|e| format!("{peer} broke off: {}", e.without_url()))?
    {
        if body.len() + chunk.len() > PEER_STATUS_LIMIT {
            return Err(format!(
                "{peer}'s /status is larger than {} MiB",
                PEER_STATUS_LIMIT >> 20
            ));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| format!("{peer}'s /status is not a status: {e}"))
}

async fn board(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<board::BoardQuery>,
) -> Response {
    let (own, peers) = fleet_status(&shared).await;
    let mut fleet: Vec<&board::ShardStatus> = peers.iter().collect();
    // Alone and before the first pass, the board says only that.
    if own.status.is_ok() || shared.fleet.shard.count > 1 {
        fleet.push(&own);
    }
    fleet.sort_by_key(|s| s.index);
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                board::content_security_policy(),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        Html(
            shared
                .watching()
                .redaction
                .apply(&board::page(&fleet, &query)),
        ),
    )
        .into_response()
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    match shared.ready() {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()).into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    match shared.last() {
        Some((report, _)) => {
            let watching = shared.watching();
            let mut doc = view::status_doc(&report, None);
            let shard = shared.fleet.shard;
            doc.shard = Some(view::ShardView {
                index: shard.index,
                count: shard.count,
                owners: match shard.count {
                    1 => Default::default(),
                    n => watching
                        .images
                        .iter()
                        .map(|(name, ..)| (name.clone(), crate::shard::owner(name, n)))
                        .collect(),
                },
            });
            let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
            (
                [(header::CONTENT_TYPE, "application/json")],
                watching.redaction.apply(&text),
            )
                .into_response()
        }
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no pass has finished yet\n".to_string(),
        )
            .into_response(),
    }
}

/// Serve every route on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    connections::serve(listener, router(shared), shutdown).await
}
