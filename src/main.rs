//! The `tagpromoter` binary: parse the command line and hand over.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = tagpromoter::cli::Cli::parse();
    tagpromoter::commands::run(&cli)
}
