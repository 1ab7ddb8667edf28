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
use axum::extract::{DefaultBodyLimit, State};
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
    Router::new()
        .route(
            "/webhooks/{receiver}",
            // The handler bounds the body itself, once it knows the request may be read.
            post(webhooks::receive).layer(DefaultBodyLimit::disable()),
        )
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

async fn board(State(shared): State<Arc<Shared>>) -> Response {
    let last = shared.last();
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
                .apply(&board::page(last.as_ref().map(|(r, _)| r.as_ref()))),
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
        Some((report, _)) => (
            [(header::CONTENT_TYPE, "application/json")],
            shared
                .watching()
                .redaction
                .apply(&view::json(&report, None)),
        )
            .into_response(),
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
