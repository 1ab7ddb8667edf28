//! Accepting connections so that no client can wear the worker down: at most
//! [`MAX_CONNECTIONS`] at once (more are closed at once), the request head within
//! [`HEAD_TIMEOUT`] (a connection that sends nothing, or its headers a byte at a time, or idles
//! between requests, is closed), and a graceful end on shutdown. Bodies are bounded by their
//! handlers (`webhooks`), which read them only once the request may be answered at all.
//!
//! It must not know the routes: it serves whatever router it is given.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{Semaphore, watch};

/// Connections served at once; beyond them a new connection is closed unanswered.
pub const MAX_CONNECTIONS: usize = 512;

/// How long a connection may take to send a request's head (and may idle between requests).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// How long open requests may finish after shutdown was asked for.
const DRAIN: Duration = Duration::from_secs(10);

/// Serve `router` on `listener` until `shutdown` resolves, then let requests in flight
/// finish (for at most ten seconds).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let (stop_tx, stop) = watch::channel(false);
    let service = TowerToHyperService::new(router);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // A connection that failed before it was accepted (reset, out of files)
                // costs only itself; pause briefly so that a full table does not spin.
                Err(e) => {
                    tracing::debug!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(%peer, limit = MAX_CONNECTIONS, "too many connections; closing a new one");
            drop(stream);
            continue;
        };
        let service = service.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    let _ = stop_tx.send(true);
    // Every connection gives its slot back when it ends.
    let _ = tokio::time::timeout(DRAIN, slots.acquire_many(MAX_CONNECTIONS as u32)).await;
    Ok(())
}
