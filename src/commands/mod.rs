//! What each command does with the pieces: load, ask, print. One file per command. Exit
//! codes follow DESIGN.md: 0 fine, 1 failed, 2 invalid rules.

mod check;
mod tags;

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{Cli, Command};
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
    }
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
