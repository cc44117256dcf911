//! Running the daemon: options, logging, the engine, the socket, and a clean stop.
// The daemon serves a Unix socket: elsewhere only its options and a clear refusal remain.
#![cfg_attr(not(unix), allow(unused_imports, dead_code))]

use std::path::PathBuf;

use ebb_core::settings::{EngineSettings, SettingsFile};
use ebb_core::{Engine, Error, Result};
use tokio_util::sync::CancellationToken;

/// `ebbd`'s options (also those of `ebb daemon`).
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// TOML configuration (default: <config dir>/ebb/ebbd.toml, if it exists).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the queue lives (default: the per-user data directory).
    #[arg(long, env = "EBB_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The socket (default: <runtime dir>/ebb/ebbd.sock).
    #[arg(long, env = "EBB_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Log to stderr (otherwise to ebbd.log in the data directory).
    #[arg(long)]
    pub foreground: bool,
    /// The engine's settings; each wins over the configuration file's `[engine]` key.
    #[command(flatten)]
    pub engine: EngineSettings,
}

fn logging(foreground: bool, data_dir: &std::path::Path) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EBB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if foreground {
        // Colours only for a person at a terminal: not into a redirected log or the journal.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        builder.with_ansi(ansi).with_writer(std::io::stderr).init();
    } else {
        ebb_core::private_dir::create(data_dir)?;
        let path = data_dir.join("ebbd.log");
        let file = ebb_core::private_dir::open_file(&path, true)?;
        builder
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .init();
    }
    Ok(())
}

/// A failure to start, written to `ebbd.log` too (where the daemon's log would have gone), so
/// that it is found later beside the rest: in the data directory the flag, else the
/// configuration file, else the default names (the default when the file cannot be read).
pub fn log_failure(args: &Options, error: &Error) {
    let file = SettingsFile::load_given_or_default(args.config.as_deref()).unwrap_or_default();
    let Ok(dir) = file.data_dir(args.data_dir.as_deref()) else {
        return;
    };
    let line = format!(
        "{} ERROR ebbd could not start: {error}\n",
        ebb_core::Timestamp::now()
    );
    let written = ebb_core::private_dir::create(&dir).and_then(|()| {
        let path = dir.join("ebbd.log");
        let mut f = ebb_core::private_dir::open_file(&path, true)?;
        std::io::Write::write_all(&mut f, line.as_bytes()).map_err(|e| Error::io(&path, e))
    });
    if let Err(e) = written {
        eprintln!("ebbd: cannot log the failure: {e}");
    }
}

#[cfg(not(unix))]
pub async fn run(_args: Options) -> Result<()> {
    Err(Error::NotSupported(
        "ebbd on Windows (it serves a Unix socket; there ebb uses the system's BITS service, \
         or an engine in the app's process)"
            .into(),
    ))
}

/// Run the daemon until SIGTERM or SIGINT.
#[cfg(unix)]
pub async fn run(args: Options) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};

    let file = SettingsFile::load_given_or_default(args.config.as_deref())?;
    let data_dir = file.data_dir(args.data_dir.as_deref())?;
    let socket = file.socket(args.socket.as_deref())?;
    logging(args.foreground, &data_dir)?;
    let engine = Engine::open(file.engine_config(data_dir.clone(), &args.engine)).await?;
    let listener = crate::bind(&socket)?;
    tracing::info!(socket = %socket.display(), data_dir = %data_dir.display(), pid = std::process::id(), "ebbd ready");
    let stop = CancellationToken::new();
    let handler = |kind| signal(kind).map_err(|e| Error::io("signal handler", e));
    let mut term = handler(SignalKind::terminate())?;
    let mut int = handler(SignalKind::interrupt())?;
    let server = tokio::spawn(crate::serve(engine.clone(), listener, stop.clone()));
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
        () = engine.stop_requested() => tracing::info!("asked to stop: stopping"),
    }
    stop.cancel();
    let _ = server.await;
    // A final checkpoint for every running job; they are queued for the next start. The
    // socket goes before the data directory is let go: a daemon started meanwhile finds the
    // directory in use until nobody can reach this one, and never has its new socket removed.
    engine.shutdown().await;
    let _ = std::fs::remove_file(&socket);
    engine.release_data_dir();
    tracing::info!("ebbd stopped");
    Ok(())
}
