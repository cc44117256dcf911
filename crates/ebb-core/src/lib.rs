//! The ebb engine: Background Intelligent Transfer Service semantics on every platform.
//!
//! An app hands the engine *jobs* (download, upload, upload-reply) made of *files*. A job starts
//! Suspended; `resume` queues it and the scheduler moves it through Connecting and Transferring
//! to Transferred, by priority (Foreground, High, Normal, Low), resuming each file with HTTP range
//! requests after any interruption. Nothing appears at a file's final name until the app calls
//! `complete`. Every job and every byte of progress lives in SQLite, committed only after the
//! bytes it counts are on disk, so a `kill -9` at any moment costs at most one checkpoint.
//!
//! ```no_run
//! use ebb_core::{Engine, EngineConfig, JobType, NewFile};
//!
//! # async fn demo() -> ebb_core::Result<()> {
//! let engine = Engine::open(EngineConfig::new("/tmp/ebb-data")).await?;
//! let job = engine.create_job("nightly", JobType::Download).await?;
//! engine
//!     .add_files(job, vec![NewFile::new("http://127.0.0.1:8080/a.iso", "/tmp/a.iso")])
//!     .await?;
//! engine.resume(job).await?;
//! let state = engine.wait(job, None).await?;
//! println!("job is {state}");
//! engine.complete(job).await?;
//! engine.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Modules, by the noun they hold: `model` (jobs, files, states, properties, bandwidth limits and
//! schedules, BITS's codes; re-exported at the root), `store` (the
//! SQLite queue, one thread owns the connection), `transfer` (HTTP and `file:` downloads into
//! hidden temporary files), `scheduler` (who runs now), `engine` (the public handle), and
//! `events` (what subscribers hear).

mod backend;
mod bandwidth;
mod config;
mod engine;
mod error;
mod events;
#[doc(hidden)]
pub mod internals;
mod lock;
mod model;
mod notify;
pub mod private_dir;
mod reader;
mod scheduler;
mod secret_key;
pub mod settings;
mod store;
mod transfer;

// One public path per name: the modules above are private, and this is the surface.
pub use backend::{Backend, JobFilter};
pub use config::{EngineConfig, database_path, default_data_dir, default_socket};
pub use engine::{
    Completion, Engine, MAX_PAGE, engine_running, read_jobs, read_page, resolve, state_changed,
};
pub use error::{Error, ErrorDetail, Result};
pub use events::Event;
pub use model::*;
pub use reader::QueueReader;
pub use transfer::{CheckpointPolicy, HttpConfig};

/// Install ring as the process's TLS crypto provider (reqwest is built without one). Every
/// `reqwest::Client` in an ebb process is built after this; calling it twice is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
