//! The `tagpromoter` binary: parse the command line, start telemetry, hand over.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = tagpromoter::cli::Cli::parse();
    tagpromoter::telemetry::init(cli.log_format, cli.verbose, cli.quiet);
    tagpromoter::commands::run(&cli)
}
