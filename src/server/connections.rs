//! Accepting connections so that no client can wear the worker down: at most
//! [`MAX_CONNECTIONS`] at once and [`MAX_PER_CLIENT`] from one address (more are closed at
//! once, and said so in one warning per [`WARN_EVERY`] with a count, not one line each), the
//! request head within [`HEAD_TIMEOUT`] (a connection that sends nothing, or its headers a
//! byte at a time, or idles between requests, is closed) and within [`MAX_HEAD_BYTES`]
//! (`431` beyond), and a graceful end on shutdown. Bodies are bounded by their handlers
//! (`webhooks`), which read them only once the request may be answered at all.
//!
//! It must not know the routes: it serves whatever router it is given.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{Semaphore, watch};

/// Connections served at once; beyond them a new connection is closed unanswered.
pub const MAX_CONNECTIONS: usize = 512;

/// Connections served at once from one address: one client cannot hold them all (the
/// kubelet's probes, Prometheus and the registries come from addresses of their own).
pub const MAX_PER_CLIENT: usize = 128;

/// How long a connection may take to send a request's head (and may idle between requests).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest request head (request line and headers) read: a registry's or a forge's is
/// a few KiB. Beyond it the answer is `431 Request Header Fields Too Large`.
pub const MAX_HEAD_BYTES: usize = 32 << 10;

/// How often connections closed for a limit are logged (with how many there were).
pub const WARN_EVERY: Duration = Duration::from_secs(10);

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
    let clients = Clients::default();
    let mut refused = Refused::default();
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
        let Some(client) = clients.admit(peer.ip()) else {
            refused.count(peer.ip(), "from one address");
            continue;
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            refused.count(peer.ip(), "in all");
            continue;
        };
        let service = service.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _slots = (slot, client);
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES)
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

/// Connections open per client address.
#[derive(Default, Clone)]
struct Clients(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One connection of a client: gives its place back when dropped.
struct Client {
    clients: Clients,
    ip: IpAddr,
}

impl Clients {
    /// A place for one more connection from `ip`, unless it holds [`MAX_PER_CLIENT`].
    fn admit(&self, ip: IpAddr) -> Option<Client> {
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_default();
        if *n >= MAX_PER_CLIENT {
            return None;
        }
        *n += 1;
        Some(Client {
            clients: self.clone(),
            ip,
        })
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let mut open = self.clients.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Connections closed for a limit since the last warning: a flood writes one line per
/// [`WARN_EVERY`], not one per connection.
#[derive(Default)]
struct Refused {
    since: Option<Instant>,
    count: u64,
}

impl Refused {
    /// Count one connection from `ip` closed for the limit `which`; warn when due.
    fn count(&mut self, ip: IpAddr, which: &'static str) {
        self.count += 1;
        let now = Instant::now();
        if self
            .since
            .is_some_and(|s| now.duration_since(s) < WARN_EVERY)
        {
            return;
        }
        tracing::warn!(
            closed = self.count,
            last = %ip,
            limit = which,
            max = MAX_CONNECTIONS,
            max_per_client = MAX_PER_CLIENT,
            "too many connections: closed new ones at once (counted since the last such warning)"
        );
        self.since = Some(now);
        self.count = 0;
    }
}
