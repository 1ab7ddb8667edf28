//! The worker's HTTP server: `/metrics` (Prometheus text), `/healthz` (alive), `/readyz`
//! (rules loaded and a pass finished within three intervals), `/status` (the JSON of
//! `tagpromoter status`, from the last pass).
//!
//! It only reads what the worker shares ([`Shared`]); it never starts a pass or touches a
//! registry or the repository, so it answers while a pass runs.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::commands::render;
use crate::engine::PassReport;
use crate::metrics::Metrics;

/// What the worker shares with the server.
pub struct Shared {
    /// The metrics.
    pub metrics: Arc<Metrics>,
    last: RwLock<Option<(Arc<PassReport>, Instant)>>,
    interval: RwLock<Duration>,
}

impl Shared {
    /// Nothing passed yet; passes every `interval`.
    pub fn new(metrics: Arc<Metrics>, interval: Duration) -> Self {
        Self {
            metrics,
            last: RwLock::new(None),
            interval: RwLock::new(interval),
        }
    }

    /// A pass finished.
    pub fn finished(&self, report: PassReport) {
        if let Ok(mut last) = self.last.write() {
            *last = Some((Arc::new(report), Instant::now()));
        }
    }

    /// The interval changed (rules reloaded).
    pub fn set_interval(&self, interval: Duration) {
        if let Ok(mut i) = self.interval.write() {
            *i = interval;
        }
    }

    fn last(&self) -> Option<(Arc<PassReport>, Instant)> {
        self.last.read().ok().and_then(|l| l.clone())
    }

    /// `Ok` when a pass finished within three intervals, else why not.
    pub fn ready(&self) -> Result<(), String> {
        let interval = self.interval.read().map(|i| *i).unwrap_or_default();
        match self.last() {
            None => Err("no pass has finished yet".into()),
            Some((_, at)) if at.elapsed() > interval * 3 => Err(format!(
                "the last pass finished {}s ago, more than three intervals ({}s)",
                at.elapsed().as_secs(),
                (interval * 3).as_secs()
            )),
            Some(_) => Ok(()),
        }
    }
}

/// The routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
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
            render::json(&report, None),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no pass has finished yet\n".to_string(),
        )
            .into_response(),
    }
}

/// Serve on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(shared))
        .with_graceful_shutdown(shutdown)
        .await
}
