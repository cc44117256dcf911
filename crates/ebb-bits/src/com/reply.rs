//! Upload-reply jobs on native BITS, through `IBackgroundCopyJob2`: the reply's progress and
//! file name (read with a job's info), the reply file name set, and the reply's bytes.

use std::path::PathBuf;

use ebb_core::{Error, JobId, JobType, ReplyProgress, Result};
use windows::Win32::Networking::BackgroundIntelligentTransferService::{
    BG_JOB_REPLY_PROGRESS, IBackgroundCopyJob, IBackgroundCopyJob2,
};
use windows::Win32::System::Com::CoTaskMemFree;
use windows::core::{HSTRING, Interface, PCWSTR};

use super::Ctx;
use super::convert::{err, failed};
use super::read::Reader;

/// The reply's file name and progress of an upload-reply job; nothing for other types.
pub(super) fn read_reply(
    job: &IBackgroundCopyJob,
    job_type: JobType,
    r: &mut Reader,
) -> Result<(Option<PathBuf>, Option<ReplyProgress>)> {
    if job_type != JobType::UploadReply {
        return Ok((None, None));
    }
    let job2: IBackgroundCopyJob2 = job
        .cast()
        .map_err(|e| failed("QueryInterface(IBackgroundCopyJob2)", &e))?;
    let mut p = BG_JOB_REPLY_PROGRESS {
        BytesTotal: u64::MAX,
        BytesTransferred: 0,
    };
    // SAFETY: a call on a live job; `p` is a local that outlives the call.
    r.get(
        "GetReplyProgress",
        unsafe { job2.GetReplyProgress(&raw mut p) },
        (),
    )?;
    // SAFETY: a call on a live job, without arguments; `text` frees the string.
    let name = r.text("GetReplyFileName", unsafe { job2.GetReplyFileName() })?;
    let progress = ReplyProgress {
        bytes_total: (p.BytesTotal != u64::MAX).then_some(p.BytesTotal),
        bytes_transferred: p.BytesTransferred,
    };
    Ok((
        (!name.is_empty()).then(|| PathBuf::from(name)),
        Some(progress),
    ))
}

impl Ctx {
    fn job2(&self, id: JobId) -> Result<IBackgroundCopyJob2> {
        self.job(id)?.cast().map_err(|e| err(&e))
    }

    /// `SetReplyFileName`; `None` clears it (BITS then chooses).
    pub(super) fn set_reply_file_name(&self, id: JobId, path: Option<&PathBuf>) -> Result<()> {
        let job = self.job2(id)?;
        let name = path.map(|p| HSTRING::from(p.as_os_str()));
        let ptr = name.as_ref().map_or(PCWSTR::null(), |s| PCWSTR(s.as_ptr()));
        // SAFETY: a call on a live job; the name lives in `name` until after the call (or is
        // null), and BITS only reads it.
        unsafe { job.SetReplyFileName(ptr) }.map_err(|e| err(&e))
    }

    /// `GetReplyData`: BITS's copy of the reply (at most 1 MB; BITS refuses more with
    /// `BG_E_TOO_LARGE`).
    pub(super) fn reply_data(&self, id: JobId) -> Result<Vec<u8>> {
        let job = self.job2(id)?;
        let mut buffer: *mut u8 = std::ptr::null_mut();
        let mut len: u64 = 0;
        // SAFETY: a call on a live job; `buffer` and `len` are locals that outlive the call.
        unsafe { job.GetReplyData(&raw mut buffer, &raw mut len) }.map_err(|e| err(&e))?;
        if buffer.is_null() {
            return Ok(Vec::new());
        }
        let len = usize::try_from(len).map_err(|_| Error::InvalidArgument("reply size".into()))?;
        // SAFETY: BITS returned `buffer` holding `len` bytes, allocated with CoTaskMemAlloc; the
        // bytes are copied out once, then the buffer is freed once and not used again.
        let data = unsafe { std::slice::from_raw_parts(buffer, len) }.to_vec();
        // SAFETY: as above: freed once, here.
        unsafe { CoTaskMemFree(Some(buffer as *const _)) };
        Ok(data)
    }
}
