//! `tagpromoter run`: opens the engine and alerting, binds `--listen` (and
//! `--listen-board`), serves them throughout, and hands the loop to [`crate::worker`].
//! SIGTERM or Ctrl-C stops the worker after the pass in flight; exit 0.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use tokio::sync::watch;

use super::{EXIT_FAILED, load_rules, open_engine, runtime};
use crate::alert::Alerting;
use crate::cli::{Cli, RunArgs};
use crate::metrics::Metrics;
use crate::server::{self, Shared};
use crate::shard::{Fleet, Shard};
use crate::worker::{self, Worker};

/// This worker's shard (`--shard`, else a StatefulSet pod's ordinal) and its peers.
fn fleet_of(args: &RunArgs) -> Result<Fleet, String> {
    let index = match (args.shard, args.shards) {
        (Some(index), _) => index,
        // Alone (or no shards at all, which Shard::new refuses below).
        (None, 0 | 1) => 0,
        (None, shards) => {
            let host = std::env::var("HOSTNAME")
                .ok()
                .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
                .unwrap_or_default();
            crate::shard::ordinal_of(host.trim()).ok_or_else(|| {
                format!(
                    "--shards {shards} needs this worker's shard: run it in a StatefulSet (pods named NAME-0, NAME-1, …; this host is {:?}) or pass --shard",
                    host.trim()
                )
            })?
        }
    };
    Ok(Fleet {
        shard: Shard::new(index, args.shards)?,
        peer_url: args.peer_url.clone(),
    })
}

/// Resolves once SIGTERM or SIGINT arrives.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = term => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

/// `tagpromoter run`.
pub fn run(cli: &Cli, args: &RunArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let metrics = Arc::new(Metrics::new());
        let fleet = match fleet_of(args) {
            Ok(f) => f,
            Err(why) => {
                let _ = writeln!(std::io::stderr(), "{why}");
                return ExitCode::from(EXIT_FAILED);
            }
        };
        let rules = match load_rules(cli) {
            Ok(r) => r,
            Err(code) => return code,
        };
        let shard = fleet.shard;
        let owned = worker::owned(rules.clone(), shard);
        tracing::info!(
            shard = %shard,
            promotions = owned.promotions.len(),
            of = rules.promotions.len(),
            "this worker's promotions"
        );
        let engine = match open_engine(cli, owned, Arc::clone(&metrics), None, true).await {
            Ok(e) => e,
            Err(code) => return code,
        };
        let alerting =
            match Alerting::start(&engine.rules().settings, &cli.cache_dir(), metrics.alerts.clone()) {
                Ok(a) => match &args.external_url {
                    Some(url) => a.with_external_url(url),
                    None => a,
                },
                Err(e) => {
                    let _ = writeln!(std::io::stderr(), "{e}");
                    return ExitCode::from(EXIT_FAILED);
                }
            };
        let bind = |addr: std::net::SocketAddr, flag: &'static str| async move {
            tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                let _ = writeln!(
                    std::io::stderr(),
                    "cannot listen on {addr}: {e}; choose another address with {flag}"
                );
                ExitCode::from(EXIT_FAILED)
            })
        };
        let listener = match bind(args.listen, "--listen").await {
            Ok(l) => l,
            Err(code) => return code,
        };
        let board_listener = match args.listen_board {
            Some(addr) => match bind(addr, "--listen-board").await {
                Ok(l) => Some(l),
                Err(code) => return code,
            },
            None => None,
        };
        let probe_listener = match args.listen_probes {
            Some(addr) => match bind(addr, "--listen-probes").await {
                Ok(l) => Some(l),
                Err(code) => return code,
            },
            None => None,
        };
        let shared = Arc::new(Shared::new(Arc::clone(&metrics), &rules).with_fleet(fleet));
        let (stop_tx, stop) = watch::channel(false);
        let stopped = |mut stop: watch::Receiver<bool>| async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let mut servers = Vec::new();
        if let Some(probes) = probe_listener {
            servers.push(tokio::spawn(server::connections::serve(
                probes,
                server::probe_router(Arc::clone(&shared)),
                stopped(stop.clone()),
            )));
            tracing::info!(listen_probes = ?args.listen_probes, "serving /healthz, /readyz and /metrics on --listen-probes too");
        }
        match board_listener {
            Some(board) => {
                servers.push(tokio::spawn(server::connections::serve(
                    listener,
                    server::service_router(Arc::clone(&shared)),
                    stopped(stop.clone()),
                )));
                servers.push(tokio::spawn(server::connections::serve(
                    board,
                    server::board_router(Arc::clone(&shared)),
                    stopped(stop.clone()),
                )));
                tracing::info!(listen = %args.listen, listen_board = ?args.listen_board, "serving /metrics, /healthz, /readyz and /webhooks/<type>; the board and /status on --listen-board");
            }
            None => {
                servers.push(tokio::spawn(server::serve(
                    listener,
                    Arc::clone(&shared),
                    stopped(stop.clone()),
                )));
                tracing::info!(listen = %args.listen, "serving the board at /, /metrics, /healthz, /readyz, /status and /webhooks/<type>");
            }
        }
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down after the pass in flight");
            let _ = stop_tx.send(true);
        });
        let worker = Worker {
            engine,
            alerting,
            shared,
            rules_dir: Some(cli.rules.clone()),
            shard,
        };
        worker.run(stop).await;
        for server in servers {
            let _ = server.await;
        }
        ExitCode::SUCCESS
    })
}
