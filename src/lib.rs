//! ebb: background transfers with the BITS job model, on every platform.
//!
//! Apps hand ebb *jobs* made of files; ebb moves them in the background by priority, resumes
//! after any interruption with HTTP range requests, survives crashes and reboots (the queue is
//! SQLite, and progress is committed only once the bytes are on disk), and makes the files appear
//! at their final names only when the app calls `complete` — the semantics of Microsoft's
//! Background Intelligent Transfer Service, with its states, defaults and error codes.
//!
//! Everything an app needs is the [`Backend`] trait. It is implemented by the in-process
//! [`Engine`], by [`Client`], which talks to the per-user daemon `ebbd`, and by [`Bits`], the
//! system's BITS service on Windows. [`open`] picks one by configuration ([`Choice::Default`]:
//! native BITS on Windows, the daemon elsewhere), so an app switches backend without rewriting.
//!
//! ```
//! use ebb::{Backend, Engine, EngineConfig, JobState, JobType, NewFile};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let dir = std::env::temp_dir().join(format!("ebb-doc-{}", std::process::id()));
//!     std::fs::create_dir_all(&dir)?;
//!     let source = dir.join("source.txt");
//!     std::fs::write(&source, "hello, background world")?;
//!
//!     let engine = Engine::open(EngineConfig::new(dir.join("queue"))).await?;
//!     let backend: &dyn Backend = &engine; // the same calls work on every backend
//!     let job = backend.create_job("docs", JobType::Download).await?;
//!     let dest = dir.join("copy.txt");
//!     let url = format!("file://{}", source.display()); // http(s) URLs work the same way
//!     backend.add_files(job, vec![NewFile::new(url, &dest)]).await?;
//!     backend.resume(job).await?;
//!     assert_eq!(backend.wait(job, None).await?, JobState::Transferred);
//!     assert!(!dest.exists()); // nothing at the final name before Complete
//!     backend.complete(job).await?;
//!     assert_eq!(std::fs::read_to_string(&dest)?, "hello, background world");
//!
//!     engine.shutdown().await;
//!     std::fs::remove_dir_all(&dir)?;
//!     Ok(())
//! }
//! ```

pub use ebb_api::Client;
pub use ebb_bits::Bits;

use std::path::PathBuf;

/// Which backend [`open`] gives an app.
#[derive(Debug, Clone)]
pub enum Choice {
    /// The platform's own: native BITS on Windows; elsewhere the per-user daemon (`EBB_SOCKET`,
    /// else the default socket).
    Default,
    /// ebb's portable engine, in this process (on every platform, Windows included).
    Engine(Box<EngineConfig>),
    /// The daemon listening on this socket.
    Daemon(PathBuf),
    /// The system's BITS service (Windows only; elsewhere an "unavailable" error).
    Native,
    /// The queue of this data directory, read without taking it (works while another process
    /// runs its engine); changes are refused.
    Reader(PathBuf),
}

/// Open a backend: the same [`Backend`] calls work on each, so an app switches by configuration.
pub async fn open(choice: Choice) -> Result<Box<dyn Backend>> {
    Ok(match choice {
        Choice::Default if cfg!(windows) => Box::new(Bits::connect().await?),
        Choice::Default => {
            let socket = std::env::var_os("EBB_SOCKET").map(PathBuf::from);
            let socket =
                settings::SettingsFile::load_given_or_default(None)?.socket(socket.as_deref())?;
            Box::new(Client::connect(socket).await?)
        }
        Choice::Engine(config) => Box::new(Engine::open(*config).await?),
        Choice::Daemon(socket) => Box::new(Client::connect(socket).await?),
        Choice::Native => Box::new(Bits::connect().await?),
        Choice::Reader(data_dir) => Box::new(QueueReader::new(data_dir)),
    })
}
pub use ebb_core::*;
