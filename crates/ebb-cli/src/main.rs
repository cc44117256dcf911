//! `ebb`: BITS-style background transfers from a shell.
//!
//! Exit codes: 0 success, 1 the operation failed (the message says why), 2 bad usage, 124 a
//! `--timeout` passed, 130/143 interrupted (Ctrl-C, SIGTERM).

/// `print!` that returns an error instead of panicking when stdout is closed.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::output::emit(format_args!($($arg)*))
    };
}

mod args;
mod bitsadmin;
mod commands;
mod conn;
mod exit;
mod monitor;
mod output;
mod watch;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::Parser;
use ebb::NewFile;

use args::{Cli, Command, EngineArgs};

fn main() -> ExitCode {
    // Under the name `bitsadmin` (a symlink), every argument is BITSAdmin's.
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked = argv.first().and_then(|a| {
        Path::new(a)
            .file_stem()
            .map(std::ffi::OsStr::to_ascii_lowercase)
    });
    if invoked.as_deref() == Some(std::ffi::OsStr::new("bitsadmin")) {
        argv.insert(1, "bitsadmin".into());
        argv.insert(2, "--".into());
    }
    let cli = Cli::parse_from(argv);
    if let Command::Daemon { args } = &cli.command
        && args.first().is_none_or(|a| a != "stop")
    {
        return daemon(&cli.engine, args);
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EBB_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ebb: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) if e.is::<output::StdoutGone>() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ebb: {e:#}");
            exit::code_for(&e)
        }
    }
}

/// `ebb daemon ARGS`: becomes `ebbd ARGS`, with this call's engine settings.
fn daemon(engine: &EngineArgs, args: &[std::ffi::OsString]) -> ExitCode {
    let error = conn::exec_ebbd(engine, args);
    eprintln!("ebb daemon: {error:#}");
    ExitCode::FAILURE
}

/// A local name as the engine wants it: relative names are taken from the current directory.
fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path)
        .with_context(|| format!("{}: cannot make the path absolute", path.display()))
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let args = &cli.engine;
    match cli.command {
        Command::Create {
            job_type,
            priority,
            name,
        } => commands::create::run(args, job_type, priority, &name).await?,
        Command::AddFile {
            job,
            url,
            path,
            ranges,
            sha256,
        } => commands::add_file::run(args, &job, &url, &path, ranges.as_deref(), sha256).await?,
        Command::Resume { job, wait } => return commands::resume::run(args, &job, wait).await,
        Command::Suspend { job } => commands::suspend::run(args, &job).await?,
        Command::Cancel { job } => commands::cancel::run(args, &job).await?,
        Command::Complete { job } => commands::complete::run(args, &job).await?,
        Command::Info { job, json } => commands::info::info(args, &job, json).await?,
        Command::List {
            json,
            all,
            all_users,
        } => commands::list::run(args, json, all, all_users).await?,
        Command::Files { job, json } => commands::info::files(args, &job, json).await?,
        Command::Error { job, json } => commands::info::error(args, &job, json).await?,
        Command::Reply {
            job,
            data,
            file,
            json,
        } => commands::reply::run(args, &job, commands::reply::Show::of(data, file, json)).await?,
        Command::Set(set) => commands::set::run(args, set).await?,
        Command::Wait { job, timeout } => return commands::wait::run(args, &job, timeout).await,
        Command::Transfer(t) => return commands::transfer::run(args, t).await,
        Command::Monitor { refresh } => {
            return monitor::run(args, refresh, monitor::Style::Ebb).await;
        }
        Command::Bitsadmin { args: words } => return bitsadmin::run(args, &words).await,
        // Only `ebb daemon stop` comes here: every other form became ebbd before the runtime.
        Command::Daemon { args: words } => {
            if words.len() > 1 {
                return Err(exit::usage(
                    "`ebb daemon stop` takes no arguments (ebb's own options go before `daemon`)",
                ));
            }
            conn::stop_daemon(args).await?;
        }
        Command::ReplaceRemotePrefix { job, old, new } => {
            commands::repair::replace_remote_prefix(args, &job, &old, &new).await?;
        }
        Command::SetRemoteName { job, index, url } => {
            commands::repair::set_remote_name(args, &job, index, &url).await?;
        }
        Command::Bandwidth(verb) => commands::bandwidth::run(args, verb).await?,
        Command::Completions { shell } => commands::docs::completions(shell)?,
        Command::Man { dir } => commands::docs::man(dir.as_deref())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// A file from the command line: `URL#sha256=HEX` carries the digest the file must have (the
/// fragment is never sent to the server).
fn new_file(url: &str, path: &Path) -> anyhow::Result<NewFile> {
    let local = absolute(path)?;
    match url.split_once("#sha256=") {
        Some((url, hex)) => {
            let digest: ebb::Sha256Digest = hex.parse().map_err(|e: String| anyhow!(e))?;
            Ok(NewFile::new(url, local).with_sha256(digest))
        }
        None => Ok(NewFile::new(url, local)),
    }
}
