//! The object BITS calls back (`IBackgroundCopyCallback2`): each notice becomes a model event.
// The `implement` macro's generated code casts references to pointers and inlines always.
#![allow(clippy::ref_as_ptr, clippy::inline_always)]

use std::sync::mpsc;

use ebb_core::{Event, JobError, JobId, JobState};
use tokio::sync::broadcast;
use windows::Win32::Networking::BackgroundIntelligentTransferService::{
    IBackgroundCopyCallback_Impl, IBackgroundCopyCallback2, IBackgroundCopyCallback2_Impl,
    IBackgroundCopyError, IBackgroundCopyFile, IBackgroundCopyJob,
};
use windows::core::{Interface, implement};

use super::convert::{index_of, job_id, state};
use super::read::{Reader, error_info, file_info, files};
use super::{Ctx, Task};

/// The object BITS calls back. It must not call into BITS from inside a callback (Wine's
/// service crashed when it did), so each notice is handed, with its interface, to the COM
/// thread, which reads the job and sends the event.
#[implement(IBackgroundCopyCallback2)]
pub(super) struct Callback {
    pub(super) tasks: mpsc::Sender<Task>,
    pub(super) events: broadcast::Sender<Event>,
}

/// A COM interface pointer moved from BITS's callback thread to our COM thread.
struct Moved<T: Interface>(T);

// SAFETY: `T` is a COM interface pointer (the `Interface` bound), which the `windows` crate
// reference-counts; moving it moves one reference. Both threads that hold it are in the
// multithreaded apartment: BITS calls our callback object, created on the MTA COM thread, on
// MTA threads, and an interface pointer of the MTA (BITS's objects are proxies to its service)
// may be used from any thread of the MTA. The value is used on one thread at a time.
unsafe impl<T: Interface> Send for Moved<T> {}

/// The job's id and state, or none if BITS cannot say.
fn id_and_state(job: &IBackgroundCopyJob) -> Option<(JobId, JobState)> {
    // SAFETY: a call on a live job, without arguments, made on the COM thread.
    let id = unsafe { job.GetId() }.ok()?;
    // SAFETY: a call on a live job, without arguments, made on the COM thread.
    let s = unsafe { job.GetState() }.ok()?;
    Some((job_id(id), state(s.0)))
}

impl Callback {
    /// Hand `f` to the COM thread, with the job of the notice (if BITS gave one).
    fn later(
        &self,
        job: &windows::core::Ref<IBackgroundCopyJob>,
        f: impl FnOnce(&IBackgroundCopyJob, &broadcast::Sender<Event>) + Send + 'static,
    ) {
        let Some(job) = job.as_ref().cloned() else {
            return;
        };
        let job = Moved(job);
        let events = self.events.clone();
        let _ = self.tasks.send(Box::new(move |_ctx: &Ctx| {
            let job = job;
            f(&job.0, &events);
        }));
    }
}

impl IBackgroundCopyCallback_Impl for Callback_Impl {
    fn JobTransferred(
        &self,
        job: windows::core::Ref<IBackgroundCopyJob>,
    ) -> windows::core::Result<()> {
        self.later(&job, |job, events| {
            if let Some((job_id, _)) = id_and_state(job) {
                let _ = events.send(Event::JobTransferred { job_id });
            }
        });
        Ok(())
    }

    fn JobError(
        &self,
        job: windows::core::Ref<IBackgroundCopyJob>,
        error: windows::core::Ref<IBackgroundCopyError>,
    ) -> windows::core::Result<()> {
        let error = error.as_ref().cloned().map(Moved);
        self.later(&job, move |job, events| {
            let error = error;
            let Some((job_id, state)) = id_and_state(job) else {
                return;
            };
            let mut r = Reader::new();
            let info = error
                .as_ref()
                .and_then(|e| error_info(&e.0, &[], &mut r).ok());
            if let Some(info) = info {
                let _ = events.send(Event::JobError {
                    job_id,
                    state,
                    error: JobError {
                        context: info.context,
                        code: info.code,
                        description: info.description,
                        file_index: None,
                    },
                });
            }
        });
        Ok(())
    }

    fn JobModification(
        &self,
        job: windows::core::Ref<IBackgroundCopyJob>,
        _reserved: u32,
    ) -> windows::core::Result<()> {
        self.later(&job, |job, events| {
            if let Some((job_id, state)) = id_and_state(job) {
                let _ = events.send(Event::JobModified { job_id, state });
            }
        });
        Ok(())
    }
}

impl IBackgroundCopyCallback2_Impl for Callback_Impl {
    fn FileTransferred(
        &self,
        job: windows::core::Ref<IBackgroundCopyJob>,
        file: windows::core::Ref<IBackgroundCopyFile>,
    ) -> windows::core::Result<()> {
        let file = file.as_ref().cloned().map(Moved);
        self.later(&job, move |job, events| {
            let file = file;
            let Some((job_id, _)) = id_and_state(job) else {
                return;
            };
            // The model names files by index: find this one among the job's.
            let want = file.as_ref().and_then(|f| file_info(&f.0).ok());
            let all = files(job).ok();
            if let Some(file_index) = want.zip(all).and_then(|(want, all)| index_of(&all, &want)) {
                let _ = events.send(Event::FileTransferred { job_id, file_index });
            }
        });
        Ok(())
    }
}
