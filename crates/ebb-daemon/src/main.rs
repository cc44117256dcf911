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
    match runtime.block_on(ebb_daemon::run(args.options.clone())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ebbd: {e:#}");
            ebb_daemon::log_failure(&args.options, &e);
            // A setting it cannot take is bad usage (2), as for `ebb`; anything else fails (1).
            ExitCode::from(if matches!(e, ebb_core::Error::InvalidArgument(_)) {
                2
            } else {
                1
            })
        }
    }
}
