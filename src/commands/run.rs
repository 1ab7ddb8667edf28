//! `tagpromoter run`: the worker. A pass every `interval` plus up to 10% jitter; the rules
//! are read again before each pass (the last good ones stay in force when they turn
//! invalid, and the error is logged); SIGTERM or Ctrl-C lets the pass in flight finish
//! (its push included) and exits 0.

use std::process::ExitCode;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;

use super::{open_engine, render, runtime};
use crate::cli::Cli;
use crate::rules;

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

/// `tagpromoter run`.
pub fn run(cli: &Cli) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let mut engine = match open_engine(cli).await {
            Ok(e) => e,
            Err(code) => return code,
        };
        let (stop_tx, mut stop) = watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down after the pass in flight");
            let _ = stop_tx.send(true);
        });
        loop {
            match rules::load_dir(&cli.rules) {
                Ok(new) => {
                    let git = &engine.rules().settings.git;
                    if new.settings.git.url != git.url || new.settings.git.branch != git.branch {
                        tracing::warn!("git.url or git.branch changed; restart to use them (the old repository stays in use)");
                    }
                    engine.set_rules(new);
                }
                Err(diags) => {
                    let problems: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
                    tracing::error!(problems = %problems.join("; "), "the rules are invalid; the last valid rules stay in force");
                }
            }
            let report = engine.pass(Timestamp::now()).await;
            for line in render::once_text(&report).lines() {
                tracing::info!("{line}");
            }
            if *stop.borrow() {
                return ExitCode::SUCCESS;
            }
            let interval = std::time::Duration::try_from(engine.rules().settings.interval)
                .unwrap_or(Duration::from_secs(120));
            let wait = interval + jitter(interval);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {},
                _ = stop.changed() => return ExitCode::SUCCESS,
            }
        }
    })
}
