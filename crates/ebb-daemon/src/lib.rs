//! `ebbd`: one ebb engine per user, serving every operation of the backend trait over HTTP/JSON
//! on a Unix domain socket, so that jobs keep moving after the app or shell that made them exits,
//! and any number of apps share one queue.
//!
//! The socket is created mode 0600 in a private directory, and a peer whose uid differs from the
//! daemon's is refused before a byte of HTTP is read (`SO_PEERCRED`). Paths start with `/v1`;
//! any other prefix is answered with a clear version-mismatch error. `docs/api.md` lists the
//! routes.
//!
//! ```no_run
//! # async fn demo() -> ebb_core::Result<()> {
//! use ebb_core::{Engine, EngineConfig};
//! let engine = Engine::open(EngineConfig::new("/tmp/ebb-data")).await?;
//! let listener = ebb_daemon::bind(std::path::Path::new("/tmp/ebb-data/ebbd.sock"))?;
//! let stop = tokio_util::sync::CancellationToken::new();
//! ebb_daemon::serve(engine.clone(), listener, stop).await;
//! engine.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod daemon;
#[cfg(unix)]
mod socket;

pub use daemon::{Options, log_failure, run};
pub use ebb_api::router;
#[cfg(unix)]
pub use socket::{ConnectionLimits, bind, serve, serve_with};
