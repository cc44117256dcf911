//! `ebbd`: the per-user ebb daemon.

use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "ebbd",
    version,
    about = "The per-user ebb daemon: one queue, served on a Unix socket"
)]
struct Args {
    #[command(flatten)]
    options: ebb_daemon::Options,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ebbd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ebb_daemon::run(args.options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ebbd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
