//! `plan`, `once` and `status`: one pass's decisions, shown (plan, status) or written
//! (once). They share the engine's pass and differ only in what they do with it.

use std::io::Write;
use std::process::ExitCode;

use std::time::Duration;

use super::{EXIT_FAILED, with_engine};
use crate::alert::Alerting;
use crate::cli::{Cli, OutputArgs, OutputFormat};
use crate::engine::PassReport;
use crate::metrics::Metrics;
use crate::view;

/// Print a pass's report: as every text the process shows, without a secret it read.
fn print(text: &str) {
    let text = crate::secret::redact(text);
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// `tagpromoter plan`.
pub fn plan(cli: &Cli, args: &OutputArgs) -> ExitCode {
    let progress = args.output == OutputFormat::Text;
    with_engine(cli, progress, |engine| async move {
        let report = engine.preview(crate::engine::now()).await;
        let several = engine.rules().destinations().len() > 1;
        let diff = view::diff::planned(&report, several);
        match args.output {
            OutputFormat::Json => print(&format!("{}\n", view::json(&report, Some(&diff)))),
            OutputFormat::Text => {
                print(&diff);
                if !diff.is_empty() {
                    print("\n");
                }
                print(&view::plan_text(&report));
            }
        }
        exit(&report)
    })
}

/// `tagpromoter status`.
pub fn status(cli: &Cli, args: &OutputArgs) -> ExitCode {
    with_engine(cli, false, |engine| async move {
        let report = engine.preview(crate::engine::now()).await;
        match args.output {
            OutputFormat::Json => print(&format!("{}\n", view::json(&report, None))),
            OutputFormat::Text => print(&view::status_table(&report)),
        }
        ExitCode::SUCCESS
    })
}

/// `tagpromoter once`: a pass, then its alerts delivered (up to 30 s) before exiting.
pub fn once(cli: &Cli, args: &OutputArgs) -> ExitCode {
    let progress = args.output == OutputFormat::Text;
    with_engine(cli, progress, |engine| async move {
        let report = engine.pass(crate::engine::now()).await;
        let settings = &engine.rules().settings;
        match Alerting::start(settings, &cli.cache_dir(), Metrics::new().alerts) {
            Ok(mut alerting) => {
                alerting.after_pass(&report, settings);
                if !alerting.flush(Duration::from_secs(30)).await {
                    tracing::error!("some alerts could not be delivered within 30s");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot deliver alerts"),
        }
        match args.output {
            OutputFormat::Json => print(&format!("{}\n", view::json(&report, None))),
            OutputFormat::Text => print(&view::once_text(&report)),
        }
        exit(&report)
    })
}

fn exit(report: &PassReport) -> ExitCode {
    if report.failed() {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}
