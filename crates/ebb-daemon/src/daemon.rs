//! Running the daemon: options, logging, the engine, the socket, and a clean stop.
// The daemon serves a Unix socket: elsewhere only its options and a clear refusal remain.
#![cfg_attr(not(unix), allow(unused_imports, dead_code))]

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use ebb_core::{Engine, EngineConfig};
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
    #[arg(long, env = "EBB_CHECKPOINT_BYTES", hide = true)]
    pub checkpoint_bytes: Option<u64>,
    #[arg(long, env = "EBB_CHECKPOINT_INTERVAL", hide = true, value_parser = humantime::parse_duration)]
    pub checkpoint_interval: Option<std::time::Duration>,
}

fn logging(foreground: bool, data_dir: &std::path::Path) -> anyhow::Result<()> {
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
        let file = ebb_core::private_dir::open_file(&path, true)
            .with_context(|| format!("{}: cannot open the log", path.display()))?;
        builder
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .init();
    }
    Ok(())
}

#[cfg(not(unix))]
pub async fn run(_args: Options) -> anyhow::Result<()> {
    anyhow::bail!(
        "ebbd serves a Unix socket and runs on Unix; on Windows ebb uses the system's BITS \
         service (or an engine in the app's process)"
    )
}

/// Run the daemon until SIGTERM or SIGINT.
#[cfg(unix)]
pub async fn run(args: Options) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};

    let config_path = args.config.clone().or_else(crate::config::default_path);
    let file = match &config_path {
        Some(p) => crate::config::DaemonConfig::load(p, args.config.is_some())?,
        None => crate::config::DaemonConfig::default(),
    };
    let data_dir = args
        .data_dir
        .clone()
        .or(file.data_dir.clone())
        .or_else(ebb_core::config::default_data_dir)
        .ok_or_else(|| anyhow!("no per-user data directory: set EBB_DATA_DIR"))?;
    let socket = args
        .socket
        .clone()
        .or(file.socket.clone())
        .or_else(ebb_core::config::default_socket)
        .ok_or_else(|| anyhow!("no per-user runtime directory: set EBB_SOCKET"))?;
    logging(args.foreground, &data_dir)?;
    let mut config = file.engine(EngineConfig::new(&data_dir))?;
    if let Some(b) = args.checkpoint_bytes {
        config.checkpoint.bytes = b;
    }
    if let Some(i) = args.checkpoint_interval {
        config.checkpoint.interval = i;
    }
    let engine = Engine::open(config).await?;
    let listener = crate::bind(&socket)?;
    tracing::info!(socket = %socket.display(), data_dir = %data_dir.display(), pid = std::process::id(), "ebbd ready");
    let stop = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let server = tokio::spawn(crate::serve(engine.clone(), listener, stop.clone()));
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
    }
    stop.cancel();
    let _ = server.await;
    // A final checkpoint for every running job; they are queued for the next start.
    engine.shutdown().await;
    let _ = std::fs::remove_file(&socket);
    tracing::info!("ebbd stopped");
    Ok(())
}
