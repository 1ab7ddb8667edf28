//! What each command does with the pieces: load, ask, print. One file per command. Exit
//! codes follow DESIGN.md: 0 fine, 1 failed, 2 invalid rules.

mod check;
mod check_render;
mod manual;
mod pass;
mod progress;
mod run;
mod tags;

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::engine::{Engine, Options};
use crate::rules;

/// Exit code for a failed operation.
pub const EXIT_FAILED: u8 = 1;
/// Exit code for invalid rules.
pub const EXIT_INVALID: u8 = 2;

/// Run the command `cli` asks for.
pub fn run(cli: &Cli) -> ExitCode {
    match &cli.command {
        Command::Check(args) => check::run(cli, args),
        Command::Schema => {
            let _ = std::io::stdout().write_all(rules::schema::json_schema().as_bytes());
            ExitCode::SUCCESS
        }
        Command::Tags(args) => tags::run(cli, args),
        Command::Plan(args) => pass::plan(cli, args),
        Command::Once(args) => pass::once(cli, args),
        Command::Status(args) => pass::status(cli, args),
        Command::Run(args) => run::run(cli, args),
        Command::Promote(args) => manual::promote(cli, args),
        Command::Release(args) => manual::release(cli, args),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut command, "tagpromoter", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
    }
}

/// A runtime for the command's async work.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            let _ = writeln!(std::io::stderr(), "cannot start the async runtime: {e}");
            ExitCode::from(EXIT_FAILED)
        })
}

/// Run `work` on an engine for the rules, on a runtime of its own; the exit code is
/// `work`'s, or that of a failure to start. With `progress`, people at a terminal see the
/// registries being listed.
fn with_engine<F, Fut>(cli: &Cli, progress: bool, work: F) -> ExitCode
where
    F: FnOnce(Engine) -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let progress = progress::start(progress && !cli.quiet);
        let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
        let rules = match load_rules(cli) {
            Ok(rules) => rules,
            Err(code) => return code,
        };
        match open_engine(cli, rules, metrics, progress, false).await {
            Ok(engine) => work(engine).await,
            Err(code) => code,
        }
    })
}

/// Load the rules; exit 2 with every problem when they are invalid.
fn load_rules(cli: &Cli) -> Result<rules::Rules, ExitCode> {
    rules::load_dir(&cli.rules).map_err(|diags| report_invalid(cli, &diags))
}

/// Open the engine on `rules` (exit 1 when the cache or the clients cannot be set up),
/// counting into `metrics` and telling `progress` how the listing goes; a worker
/// (`keep_history`) keeps what it read of each repository for its next pass.
async fn open_engine(
    cli: &Cli,
    rules: rules::Rules,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    progress: Option<tokio::sync::watch::Sender<crate::engine::Progress>>,
    keep_history: bool,
) -> Result<Engine, ExitCode> {
    let options = Options {
        registry_deadline: std::time::Duration::try_from(cli.registry_timeout)
            .unwrap_or(Options::default().registry_deadline),
        progress,
        keep_history,
    };
    Engine::open_with_metrics(rules, &cli.cache_dir(), options, metrics)
        .await
        .map_err(|e| {
            let _ = writeln!(std::io::stderr(), "{e}");
            ExitCode::from(EXIT_FAILED)
        })
}

/// Print every diagnostic and a count; the exit code for invalid rules.
fn report_invalid(cli: &Cli, diags: &[rules::Diagnostic]) -> ExitCode {
    let mut out = std::io::stdout().lock();
    for d in diags {
        let _ = writeln!(out, "{d}");
    }
    let n = diags.len();
    let _ = writeln!(
        std::io::stderr(),
        "{n} problem{} in {}",
        if n == 1 { "" } else { "s" },
        cli.rules.display()
    );
    ExitCode::from(EXIT_INVALID)
}
