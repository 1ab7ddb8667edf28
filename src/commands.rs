//! What each command does with the pieces: load, decide, print. Exit codes follow
//! DESIGN.md: 0 fine, 1 failed, 2 invalid rules.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::rules;

/// Exit code for invalid rules.
pub const EXIT_INVALID: u8 = 2;

/// Run the command `cli` asks for.
pub fn run(cli: &Cli) -> ExitCode {
    match cli.command {
        Command::Check => check(cli),
        Command::Schema => schema(),
    }
}

fn check(cli: &Cli) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match rules::load_dir(&cli.rules) {
        Ok(r) => {
            if !cli.quiet {
                let envs: usize = r.promotions.iter().map(|p| p.environments.len()).sum();
                let _ = writeln!(
                    out,
                    "{}: valid ({} promotions, {} environments)",
                    cli.rules.display(),
                    r.promotions.len(),
                    envs
                );
            }
            ExitCode::SUCCESS
        }
        Err(diags) => {
            for d in &diags {
                let _ = writeln!(out, "{d}");
            }
            let _ = writeln!(
                std::io::stderr(),
                "{} problem{} in {}",
                diags.len(),
                if diags.len() == 1 { "" } else { "s" },
                cli.rules.display()
            );
            ExitCode::from(EXIT_INVALID)
        }
    }
}

fn schema() -> ExitCode {
    let _ = std::io::stdout().write_all(rules::schema::json_schema().as_bytes());
    ExitCode::SUCCESS
}
