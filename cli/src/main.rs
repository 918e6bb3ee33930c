//! `berth`: parses flags, sets up tracing, runs one command, exits non-zero with one clear line
//! on error. Everything else lives in the libraries and `commands/`.

mod client;
mod commands;
mod logging;
mod output;
mod terminal;

use clap::Parser;
use commands::Cli;

/// mimalloc: the proxy allocates per request (header maps, bodies), and its per-thread free lists
/// cost less than glibc's arenas there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    logging::init(cli.log_format, cli.command.is_long_running());
    if cli.command.is_long_running() {
        // Whatever a server, agent or proxy creates later (the store's new files among them)
        // is owner-only from the start, as its data directory is.
        rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o077));
    }
    // Store calls run on blocking threads and mostly wait on the store's one committer: past a
    // few dozen threads, more only hold memory (each has its own allocator heap and stack).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(64)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(commands::run(cli));
    // Dropping a runtime waits for every blocking task without limit; a Docker or store call
    // still running must not hold the process past the drain its command already bounded.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    if let Err(e) = result {
        // `berth exec`: the remote command's status is ours, and it said why itself.
        if let Some(commands::exec::Exited(code)) = e.downcast_ref() {
            std::process::exit(*code);
        }
        logging::say(&format!("error: {}", client::describe_error(&e)));
        std::process::exit(1);
    }
}
