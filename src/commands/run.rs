//! `tagpromoter run`: the worker. A pass over every promotion every `interval` plus up to
//! 10% jitter, and — when a webhook names a watched image — a pass over the promotions
//! watching it, about a second later (rings meanwhile are gathered into it; a push to the
//! GitOps branch asks for a full pass). The rules are read again before each pass (the
//! last good ones stay in force when they turn invalid, and the error is logged); alerts
//! are detected after each pass and delivered beside the next; the HTTP server answers on
//! `--listen` throughout. SIGTERM or Ctrl-C lets the pass in flight finish (its push
//! included), gives alerts a few seconds, and exits 0.

use std::process::ExitCode;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;

use std::io::Write;
use std::sync::Arc;

use super::{EXIT_FAILED, open_engine_with, render, runtime};
use crate::alert::Alerting;
use crate::cli::{Cli, RunArgs};
use crate::engine::{PassReport, Scope};
use crate::metrics::Metrics;
use crate::rules;
use crate::server::{self, Shared};

/// How long a webhook's pass waits for the webhooks that come with it.
const WEBHOOK_GATHER: Duration = Duration::from_secs(1);

/// Up to a tenth of `interval`, different on every call (from the clock's nanoseconds:
/// spreading workers apart needs no better randomness).
fn jitter(interval: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    interval.mul_f64(f64::from(nanos % 1000) / 10_000.0)
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

fn interval_of(rules: &rules::Rules) -> Duration {
    Duration::try_from(rules.settings.interval).unwrap_or(Duration::from_secs(120))
}

/// Read the rules again; the last valid ones stay in force when they turned invalid.
fn reload_rules(cli: &Cli, engine: &mut crate::engine::Engine, shared: &Shared) {
    match rules::load_dir(&cli.rules) {
        Ok(new) => {
            let git = &engine.rules().settings.git;
            if new.settings.git.url != git.url || new.settings.git.branch != git.branch {
                tracing::warn!(
                    "git.url or git.branch changed; restart to use them (the old repository stays in use)"
                );
            }
            let shared_rules = new.clone();
            match engine.set_rules(new) {
                Ok(()) => shared.set_rules(&shared_rules),
                Err(e) => {
                    tracing::error!(error = %e, "the new rules' registry or forge settings cannot be used; the last rules stay in force")
                }
            }
        }
        Err(diags) => {
            let problems: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
            tracing::error!(problems = %problems.join("; "), "the rules are invalid; the last valid rules stay in force");
        }
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
        let mut engine = match open_engine_with(cli, Arc::clone(&metrics), None).await {
            Ok(e) => e,
            Err(code) => return code,
        };
        let mut alerting =
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
        let shared = Arc::new(Shared::new(Arc::clone(&metrics), engine.rules()));
        let mut wakes = shared.wakes();
        let (stop_tx, mut stop) = watch::channel(false);
        let stopped = |mut stop: watch::Receiver<bool>| async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let mut servers = Vec::new();
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
        // The interval's passes cover every promotion; a webhook's covers the promotions
        // watching what it named, and is laid over the last report.
        let mut next_full = tokio::time::Instant::now();
        let mut last: Option<Arc<PassReport>> = None;
        loop {
            // Rings until now are answered by this pass; later ones ask for another.
            wakes.borrow_and_update();
            let due = shared.take_due();
            let scope = if tokio::time::Instant::now() >= next_full {
                Some(Scope::All)
            } else {
                due
            };
            if let Some(scope) = scope {
                reload_rules(cli, &mut engine, &shared);
                let report = engine.pass_within(&scope, Timestamp::now()).await;
                for line in render::once_text(&report).lines() {
                    tracing::info!("{line}");
                }
                if scope == Scope::All {
                    let interval = interval_of(engine.rules());
                    next_full = tokio::time::Instant::now() + interval + jitter(interval);
                }
                let report = match &last {
                    Some(previous) => report.laid_over(previous),
                    None => report,
                };
                alerting.after_pass(&report, &engine.rules().settings);
                let report = Arc::new(report);
                shared.finished(Arc::clone(&report));
                last = Some(report);
            }
            if *stop.borrow() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(next_full) => {},
                _ = wakes.changed() => {
                    // Gather what else arrives with it (a multi-arch push rings for every
                    // manifest), then pass once.
                    tokio::select! {
                        _ = tokio::time::sleep(WEBHOOK_GATHER) => {},
                        _ = stop.changed() => break,
                    }
                }
                _ = stop.changed() => break,
            }
        }
        if !alerting.flush(Duration::from_secs(5)).await {
            tracing::warn!("some alerts were not delivered before shutdown");
        }
        for server in servers {
            let _ = server.await;
        }
        ExitCode::SUCCESS
    })
}
