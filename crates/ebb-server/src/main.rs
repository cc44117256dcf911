//! `ebb-server`: serve BITS uploads (and ranged downloads) from one or more directories.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ebb_server::{App, ServerConfig};

/// The receiving side of the BITS upload protocol, and a ranged file server over the same
/// directories.
#[derive(Debug, Parser)]
#[command(name = "ebb-server", version)]
struct Args {
    /// A TOML configuration of one or more upload directories (see docs/server.md).
    #[arg(long, conflicts_with = "root")]
    config: Option<PathBuf>,
    /// Serve this one directory under `/`, with every default.
    #[arg(long, required_unless_present = "config")]
    root: Option<PathBuf>,
    /// Where to listen (overrides the file's `listen`).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Let an upload replace a file that exists (with --root).
    #[arg(long, requires = "root")]
    allow_overwrite: bool,
    /// Where the session database lives (default: <root>/.ebb-server).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

fn config(args: &Args) -> ebb_server::Result<ServerConfig> {
    let default_listen = SocketAddr::from(([127, 0, 0, 1], 8080));
    let mut config = match (&args.config, &args.root) {
        (Some(file), _) => ServerConfig::load(file)?,
        (None, Some(root)) => {
            let mut c = ServerConfig::root(root, default_listen);
            c.directories[0].allow_overwrite = args.allow_overwrite;
            c
        }
        (None, None) => return Err(ebb_server::Error::Config("--config or --root".into())),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = &args.state_dir {
        config.state_dir = Some(dir.clone());
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.tls = Some(ebb_server::Tls {
            cert: cert.clone(),
            key: key.clone(),
        });
    }
    Ok(config)
}

async fn run(args: Args) -> ebb_server::Result<()> {
    let config = config(&args)?;
    let (listen, config_tls) = (config.listen, config.tls.is_some());
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| ebb_server::Error::Config(format!("cannot listen on {listen}: {e}")))?;
    let app = App::open(config).await?;
    let addr = listener.local_addr().map_or(listen, |a| a);
    // Scripts read the address from this line (a port of 0 picks a free one).
    let scheme = if config_tls { "https" } else { "http" };
    println!("ebb-server listening on {scheme}://{addr}");
    app.serve(listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EBB_SERVER_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ebb-server: {e}");
            ExitCode::from(1)
        }
    }
}
