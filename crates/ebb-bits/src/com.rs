//! The COM side: one thread in the multithreaded apartment owns the `IBackgroundCopyManager`;
//! async callers send it closures and await their results (as `ebb-core`'s store does with its
//! SQLite connection). Events come back through an `IBackgroundCopyCallback2` object.
//!
//! `convert` turns BITS's values into the model's and back, `read` reads jobs and files,
//! `write` creates and changes them, and `callback` is the object BITS calls back.
// COM is an unsafe FFI surface: every call on an interface pointer (which the `windows` crate
// reference-counts) is unsafe. Allowed here, for this module and its submodules only; each
// unsafe block wraps one call and its SAFETY note says what else it relies on.
#![allow(unsafe_code)]

mod callback;
mod convert;
mod read;
mod reply;
mod write;

use std::sync::mpsc;

use ebb_core::{
    Completion, Error, Event, JobId, JobInfo, JobState, JobType, NewFile, PropertyChange, Result,
    ResumeOutcome,
};
use tokio::sync::{broadcast, oneshot};
use windows::Win32::Networking::BackgroundIntelligentTransferService::{
    BackgroundCopyManager, IBackgroundCopyCallback2, IBackgroundCopyJob3, IBackgroundCopyManager,
};
use windows::Win32::System::Com::{
    CLSCTX_LOCAL_SERVER, COINIT_MULTITHREADED, CoCreateInstance, CoInitializeEx,
};
use windows::core::{HSTRING, Interface};

use self::callback::Callback;
use self::convert::{err, state};
use self::read::{files, info};
use crate::Gaps;

/// Work for the COM thread.
type Task = Box<dyn FnOnce(&Ctx) + Send>;

/// What the COM thread owns.
struct Ctx {
    manager: IBackgroundCopyManager,
    callback: IBackgroundCopyCallback2,
}

/// The handle async callers hold.
#[derive(Debug, Clone)]
pub(crate) struct Com {
    tx: mpsc::Sender<Task>,
    events: broadcast::Sender<Event>,
}

impl Com {
    /// Start the COM thread and connect to BITS.
    pub(crate) async fn start() -> Result<Self> {
        let (tx, rx) = mpsc::channel::<Task>();
        let (events, _) = broadcast::channel(4096);
        let (ready_tx, ready_rx) = oneshot::channel();
        let sender = events.clone();
        let tasks = tx.clone();
        std::thread::Builder::new()
            .name("ebb-bits-com".into())
            .spawn(move || {
                // SAFETY: initialises COM for this thread, once, before any COM call on it.
                let init = unsafe { CoInitializeEx(None, COINIT_MULTITHREADED) };
                if init.is_err() {
                    let _ = ready_tx.send(Err(err(&windows::core::Error::from(init))));
                    return;
                }
                // SAFETY: COM is initialised on this thread; the CLSID is BITS's.
                let manager: windows::core::Result<IBackgroundCopyManager> =
                    unsafe { CoCreateInstance(&BackgroundCopyManager, None, CLSCTX_LOCAL_SERVER) };
                let manager = match manager {
                    Ok(m) => m,
                    Err(e) => {
                        let _ = ready_tx.send(Err(err(&e)));
                        return;
                    }
                };
                let callback: IBackgroundCopyCallback2 = Callback {
                    tasks,
                    events: sender,
                }
                .into();
                let ctx = Ctx { manager, callback };
                let _ = ready_tx.send(Ok(()));
                while let Ok(task) = rx.recv() {
                    task(&ctx);
                }
            })
            .map_err(|e| Error::InvalidArgument(format!("cannot start the COM thread: {e}")))?;
        ready_rx.await.map_err(|_| Error::ShutDown)??;
        Ok(Self { tx, events })
    }

    /// Run `f` on the COM thread and await its result.
    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Ctx) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Box::new(move |ctx| {
                let _ = tx.send(f(ctx));
            }))
            .map_err(|_| Error::ShutDown)?;
        rx.await.map_err(|_| Error::ShutDown)?
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub(crate) async fn create_job(&self, name: String, t: JobType) -> Result<JobId> {
        self.call(move |c| c.create(&name, t)).await
    }

    pub(crate) async fn add_files(&self, id: JobId, files: Vec<NewFile>) -> Result<()> {
        if files.is_empty() {
            return Err(Error::InvalidArgument("no files to add".into()));
        }
        if files.iter().any(|f| f.sha256.is_some()) {
            return Err(Error::NotSupported(
                "an expected SHA-256 digest on native BITS (it checks none)".into(),
            ));
        }
        if files
            .iter()
            .any(|f| f.remote_url.to_ascii_lowercase().starts_with("tus+"))
        {
            return Err(Error::NotSupported(
                "tus uploads on native BITS (it speaks the BITS upload protocol only)".into(),
            ));
        }
        self.call(move |c| c.add(id, &files)).await
    }

    pub(crate) async fn resume(&self, id: JobId) -> Result<ResumeOutcome> {
        self.call(move |c| {
            let job = c.job(id)?;
            c.watch(&job);
            // SAFETY: a call on a live job, without arguments, on the COM thread.
            let before = state(unsafe { job.GetState() }.map_err(|e| err(&e))?.0);
            if before == JobState::Transferred {
                return Ok(ResumeOutcome::AlreadyTransferred);
            }
            // SAFETY: a call on a live job, without arguments, on the COM thread.
            unsafe { job.Resume() }.map_err(|e| err(&e))?;
            Ok(if before.is_active() {
                ResumeOutcome::AlreadyActive
            } else {
                ResumeOutcome::Queued
            })
        })
        .await
    }

    pub(crate) async fn suspend(&self, id: JobId) -> Result<()> {
        self.call(move |c| {
            let job = c.job(id)?;
            // SAFETY: a call on a live job, without arguments, on the COM thread.
            unsafe { job.Suspend() }.map_err(|e| err(&e))
        })
        .await
    }

    pub(crate) async fn cancel(&self, id: JobId) -> Result<()> {
        self.call(move |c| {
            let job = c.job(id)?;
            // Unhook our callback first: Wine's service crashed later when a job cancelled in
            // mid-transfer still had it. On Windows a cancelled job calls nobody anyway.
            // SAFETY: a call on a live job, with no interface (a null pointer), on the COM thread.
            let _ = unsafe { job.SetNotifyInterface(None::<&windows::core::IUnknown>) };
            // SAFETY: a call on a live job, without arguments, on the COM thread.
            unsafe { job.Cancel() }.map_err(|e| err(&e))
        })
        .await
    }

    pub(crate) async fn complete(&self, id: JobId) -> Result<Completion> {
        self.call(move |c| c.complete(id)).await
    }

    pub(crate) async fn set_property(&self, id: JobId, change: PropertyChange) -> Result<()> {
        self.call(move |c| c.set(id, change)).await
    }

    pub(crate) async fn replace_remote_prefix(
        &self,
        id: JobId,
        old: String,
        new: String,
    ) -> Result<usize> {
        self.call(move |c| {
            let job = c.job(id)?;
            let before = files(&job)?;
            let job3: IBackgroundCopyJob3 = job.cast().map_err(|e| err(&e))?;
            // SAFETY: a call on a live job, on the COM thread; both strings outlive the call.
            unsafe { job3.ReplaceRemotePrefix(&HSTRING::from(&old), &HSTRING::from(&new)) }
                .map_err(|e| err(&e))?;
            Ok(before
                .iter()
                .filter(|f| f.remote_url.starts_with(&old))
                .count())
        })
        .await
    }

    pub(crate) async fn set_remote_name(&self, id: JobId, index: usize, url: String) -> Result<()> {
        self.call(move |c| c.set_remote_name(id, index, &url)).await
    }

    pub(crate) async fn reply_data(&self, id: JobId) -> Result<Vec<u8>> {
        self.call(move |c| c.reply_data(id)).await
    }

    pub(crate) async fn job(&self, id: JobId) -> Result<(JobInfo, Gaps)> {
        self.call(move |c| info(&c.job(id)?)).await
    }

    pub(crate) async fn jobs(&self, all_users: bool) -> Result<Vec<JobInfo>> {
        self.call(move |c| c.jobs(all_users)).await
    }
}

// The COM thread is the only place interfaces live; Ctx never leaves it.
impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ctx")
    }
}
