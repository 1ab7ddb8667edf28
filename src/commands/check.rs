//! `tagpromoter check`: validate the rules.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::Cli;
use crate::rules;

/// Print "valid" with a summary (exit 0), or every problem (exit 2).
pub fn run(cli: &Cli) -> ExitCode {
    match rules::load_dir(&cli.rules) {
        Ok(r) => {
            if !cli.quiet {
                let envs: usize = r.promotions.iter().map(|p| p.environments.len()).sum();
                let _ = writeln!(
                    std::io::stdout(),
                    "{}: valid ({} promotions, {} environments)",
                    cli.rules.display(),
                    r.promotions.len(),
                    envs
                );
            }
            ExitCode::SUCCESS
        }
        Err(diags) => super::report_invalid(cli, &diags),
    }
}
