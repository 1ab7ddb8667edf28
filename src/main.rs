//! The `tagpromoter` binary: parse the command line, start telemetry, hand over.

use clap::Parser;

fn main() -> std::process::ExitCode {
    one_malloc_arena();
    let cli = tagpromoter::cli::Cli::parse();
    tagpromoter::telemetry::init(cli.log_format, cli.verbose, cli.quiet);
    tagpromoter::commands::run(&cli)
}

/// Give glibc's allocator one arena, unless the operator chose (`MALLOC_ARENA_MAX`).
///
/// By default every thread that allocates gets an arena of its own, and what a thread frees
/// stays in its arena for it. A pass reads histories on blocking threads, then decides on
/// the runtime's: the process holds both at once. At 10,000 promotions that made the peak
/// RSS of a `once` after a commit 280-310 MiB over a heap that never passed 169 MiB; with
/// one arena, 221 MiB, at the same speed (glibc's per-thread caches serve most small
/// allocations without the arena's lock). `cargo bench --bench fleet` measures it.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: `mallopt` only sets a parameter of the allocator; it runs first in
        // `main`, before this program starts any thread.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}
