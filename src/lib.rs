//! ebb: background transfers with the BITS job model, on every platform.
//!
//! Apps hand ebb *jobs* made of files; ebb moves them in the background by priority, resumes
//! after any interruption with HTTP range requests, survives crashes and reboots (the queue is
//! SQLite, and progress is committed only once the bytes are on disk), and makes the files appear
//! at their final names only when the app calls `complete` — the semantics of Microsoft's
//! Background Intelligent Transfer Service, with its states, defaults and error codes.
//!
//! Everything an app needs is the [`Backend`] trait. It is implemented by the in-process
//! [`Engine`] and by [`Client`], which talks to the per-user daemon `ebbd` (native BITS on Windows
//! follows), so an app switches backend by configuration, not by rewriting.
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

mod client;

pub use client::Client;
pub use ebb_bits::Bits;
pub use ebb_core::bandwidth::{BandwidthChange, BandwidthStatus, Limit};
pub use ebb_core::*;
