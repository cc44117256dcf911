//! Reading from BITS: a job by id, a job's [`JobInfo`] (its state, progress, times, properties,
//! files and error), every job, and a job's files.
//!
//! Every COM call here is on an interface held by reference: the `windows` crate keeps it
//! alive (reference-counted) while we hold it, and we call it on the COM thread, which is in
//! the multithreaded apartment.

use std::path::PathBuf;

use ebb_core::{
    CredentialsView, Error, ErrorCode, ErrorFile, JobErrorInfo, JobFile, JobId, JobInfo,
    JobProperties, JobState, NotifyCommandLine, NotifyFlags, ProxySettings, Result, SecurityFlags,
    Timestamp,
};
use windows::Win32::Foundation::E_NOTIMPL;
use windows::Win32::Networking::BackgroundIntelligentTransferService::{
    BG_ERROR_CONTEXT, BG_FILE_PROGRESS, BG_JOB_ENUM_ALL_USERS, BG_JOB_PRIORITY, BG_JOB_PROGRESS,
    BG_JOB_PROXY_USAGE, BG_JOB_TIMES, BG_JOB_TYPE, IBackgroundCopyError, IBackgroundCopyFile,
    IBackgroundCopyJob, IBackgroundCopyJob2, IBackgroundCopyJob4, IBackgroundCopyJobHttpOptions,
};
use windows::core::{HRESULT, Interface, PWSTR};

use super::Ctx;
use super::convert::{
    context, custom_headers, err, failed, guid, index_of, job_id, job_type, priority, proxy, state,
    take, time,
};
use crate::Gaps;

/// Tracks the optional getters that failed while a job was read, and gives their default
/// instead. Wine's BITS answers `E_NOTIMPL` for several, and `ERROR_NOACCESS` (0x800703E6) for
/// `GetDescription` of a job without one; Windows answers them all.
pub(super) struct Reader {
    pub(super) gaps: Gaps,
}

impl Reader {
    pub(super) fn new() -> Self {
        Self { gaps: Vec::new() }
    }

    /// The getter's value; its default `or` if BITS lacks it (the call is noted as a gap).
    pub(super) fn get<T>(
        &mut self,
        call: &'static str,
        r: windows::core::Result<T>,
        or: T,
    ) -> Result<T> {
        match r {
            Ok(v) => Ok(v),
            Err(e) if e.code() == E_NOTIMPL || e.code().0 as u32 == 0x8007_03E6 => {
                tracing::debug!(call, code = %format!("0x{:08x}", e.code().0), "BITS getter failed; default used");
                self.gaps.push(call);
                Ok(or)
            }
            Err(e) => Err(failed(call, &e)),
        }
    }

    /// A string getter's value, read and freed; empty if BITS lacks the getter.
    pub(super) fn text(
        &mut self,
        call: &'static str,
        r: windows::core::Result<PWSTR>,
    ) -> Result<String> {
        Ok(take(self.get(call, r, PWSTR::null())?))
    }
}

impl Ctx {
    /// The job with this id; NotFound if BITS has none.
    pub(super) fn job(&self, id: JobId) -> Result<IBackgroundCopyJob> {
        let g = guid(id);
        // SAFETY: `g` is a local that outlives the call, which only reads it.
        unsafe { self.manager.GetJob(&raw const g) }.map_err(|e| {
            if e.code().0 as u32 == ErrorCode::BG_E_NOT_FOUND.0 {
                Error::NotFound(id.to_string())
            } else {
                err(&e)
            }
        })
    }

    /// Every job of this user, or with `all_users` of every user, in BITS's order.
    pub(super) fn jobs(&self, all_users: bool) -> Result<Vec<JobInfo>> {
        let flags = if all_users { BG_JOB_ENUM_ALL_USERS } else { 0 };
        // SAFETY: a call on the live manager, with flags by value.
        let list = unsafe { self.manager.EnumJobs(flags) }.map_err(|e| failed("EnumJobs", &e))?;
        let mut out = Vec::new();
        loop {
            let mut slot = [None];
            let mut got = 0u32;
            // SAFETY: a call on the live enumerator; the slot and the count are locals that
            // outlive the call, which fills at most the slot's one element.
            unsafe { list.Next(&mut slot, &raw mut got) }
                .map_err(|e| failed("IEnumBackgroundCopyJobs::Next", &e))?;
            let Some(job) = slot[0].take().filter(|_| got == 1) else {
                break;
            };
            out.push(info(&job)?.0);
        }
        Ok(out)
    }
}

/// Everything the model knows of a job, and the getters BITS lacked while reading it.
pub(super) fn info(job: &IBackgroundCopyJob) -> Result<(JobInfo, Gaps)> {
    let mut r = Reader::new();
    // SAFETY: a call on a live job, without arguments.
    let id = job_id(unsafe { job.GetId() }.map_err(|e| failed("GetId", &e))?);
    // SAFETY: a call on a live job, without arguments.
    let s = unsafe { job.GetState() }.map_err(|e| failed("GetState", &e))?;
    let state = state(s.0);
    let progress = read_progress(job)?;
    let times = read_times(job, &mut r)?;
    // SAFETY: a call on a live job, without arguments; `take` frees the string.
    let display_name = r.text("GetDisplayName", unsafe { job.GetDisplayName() })?;
    // SAFETY: a call on a live job, without arguments; `take` frees the string.
    let description = r.text("GetDescription", unsafe { job.GetDescription() })?;
    // SAFETY: a call on a live job, without arguments; `take` frees the string.
    let owner = r.text("GetOwner", unsafe { job.GetOwner() })?;
    let properties = read_properties(job, &mut r)?;
    let files = files(job)?;
    // SAFETY: a call on a live job, without arguments.
    let error_count = r.get("GetErrorCount", unsafe { job.GetErrorCount() }, 0)?;
    let error = read_error(job, state, &files, &mut r)?;
    // SAFETY: a call on a live job, without arguments.
    let job_type = job_type(r.get("GetType", unsafe { job.GetType() }, BG_JOB_TYPE(0))?);
    let (reply_file_name, reply_progress) = super::reply::read_reply(job, job_type, &mut r)?;
    let created = time(times.CreationTime).unwrap_or(Timestamp::from_millis(0));
    // BITS does not say when it retries: the state and the error are all there is.
    let reason = ebb_core::WaitReason::of_state(
        state,
        error.as_ref().map(|e| (e.code, e.description.as_str())),
        error_count,
        None,
    );
    let info = JobInfo {
        id,
        display_name,
        description,
        job_type,
        state,
        owner,
        owner_uid: 0,
        bytes_total: (progress.BytesTotal != u64::MAX).then_some(progress.BytesTotal),
        bytes_transferred: progress.BytesTransferred,
        files_total: progress.FilesTotal as usize,
        files_transferred: progress.FilesTransferred as usize,
        error_count,
        error,
        created_at: created,
        modified_at: time(times.ModificationTime).unwrap_or(created),
        completed_at: time(times.TransferCompletionTime),
        properties,
        credentials: CredentialsView::default(),
        files,
        reply_file_name,
        reply_progress,
        reason,
    };
    Ok((info, r.gaps))
}

/// The job's progress (`GetProgress`): bytes and files, total and transferred.
fn read_progress(job: &IBackgroundCopyJob) -> Result<BG_JOB_PROGRESS> {
    let mut progress = BG_JOB_PROGRESS::default();
    // SAFETY: a call on a live job; `progress` is a local that outlives the call.
    unsafe { job.GetProgress(&raw mut progress) }.map_err(|e| failed("GetProgress", &e))?;
    Ok(progress)
}

/// The job's times (`GetTimes`): all zero, "never", if BITS lacks the call.
fn read_times(job: &IBackgroundCopyJob, r: &mut Reader) -> Result<BG_JOB_TIMES> {
    let mut times = BG_JOB_TIMES::default();
    // SAFETY: a call on a live job; `times` is a local that outlives the call.
    r.get("GetTimes", unsafe { job.GetTimes(&raw mut times) }, ())?;
    Ok(times)
}

/// The job's properties: those of `IBackgroundCopyJob`, then of the newer interfaces the job
/// has (a missing interface is noted as a gap).
fn read_properties(job: &IBackgroundCopyJob, r: &mut Reader) -> Result<JobProperties> {
    // SAFETY: a call on a live job, without arguments.
    let p = unsafe { job.GetPriority() };
    let priority = priority(r.get("GetPriority", p, BG_JOB_PRIORITY(2))?);
    let mut props = JobProperties {
        priority,
        ..JobProperties::default()
    };
    // SAFETY: a call on a live job, without arguments.
    let delay = unsafe { job.GetMinimumRetryDelay() };
    props.minimum_retry_delay = r.get("GetMinimumRetryDelay", delay, props.minimum_retry_delay)?;
    // SAFETY: a call on a live job, without arguments.
    let timeout = unsafe { job.GetNoProgressTimeout() };
    props.no_progress_timeout =
        r.get("GetNoProgressTimeout", timeout, props.no_progress_timeout)?;
    // SAFETY: a call on a live job, without arguments.
    let flags = unsafe { job.GetNotifyFlags() };
    props.notify_flags = NotifyFlags(r.get("GetNotifyFlags", flags, props.notify_flags.0)?);
    props.proxy = read_proxy(job, r)?;
    if let Ok(job2) = job.cast::<IBackgroundCopyJob2>() {
        read_notify_command_line(&job2, r, &mut props)?;
    } else {
        r.gaps.push("IBackgroundCopyJob2");
    }
    if let Ok(job4) = job.cast::<IBackgroundCopyJob4>() {
        // SAFETY: a call on a live job, without arguments.
        let max = unsafe { job4.GetMaximumDownloadTime() };
        props.maximum_download_time =
            r.get("GetMaximumDownloadTime", max, props.maximum_download_time)?;
    } else {
        r.gaps.push("IBackgroundCopyJob4");
    }
    if let Ok(http) = job.cast::<IBackgroundCopyJobHttpOptions>() {
        read_http_options(&http, r, &mut props)?;
    } else {
        r.gaps.push("IBackgroundCopyJobHttpOptions");
    }
    Ok(props)
}

/// The job's proxy settings (`GetProxySettings`): Preconfig if BITS lacks the call.
fn read_proxy(job: &IBackgroundCopyJob, r: &mut Reader) -> Result<ProxySettings> {
    let (mut usage, mut list, mut bypass) =
        (BG_JOB_PROXY_USAGE::default(), PWSTR::null(), PWSTR::null());
    // SAFETY: a call on a live job; the three out-parameters are locals that outlive the call,
    // and BITS's strings put in them are freed by `take` below.
    let got = unsafe { job.GetProxySettings(&raw mut usage, &raw mut list, &raw mut bypass) };
    r.get("GetProxySettings", got, ())?;
    Ok(proxy(usage, &take(list), &take(bypass)))
}

/// The program BITS runs on Transferred and Error (`GetNotifyCmdLine`), if one is set.
fn read_notify_command_line(
    job2: &IBackgroundCopyJob2,
    r: &mut Reader,
    props: &mut JobProperties,
) -> Result<()> {
    let (mut program, mut params) = (PWSTR::null(), PWSTR::null());
    // SAFETY: a call on a live job; both out-parameters are locals that outlive the call, and
    // BITS's strings put in them are freed by `take` below.
    let got = unsafe { job2.GetNotifyCmdLine(&raw mut program, &raw mut params) };
    r.get("GetNotifyCmdLine", got, ())?;
    let (program, params) = (take(program), take(params));
    if !program.is_empty() {
        props.notify_command_line =
            NotifyCommandLine::new(program, Some(params).filter(|p| !p.is_empty())).ok();
    }
    Ok(())
}

/// The job's HTTP options: its custom headers and security flags.
fn read_http_options(
    http: &IBackgroundCopyJobHttpOptions,
    r: &mut Reader,
    props: &mut JobProperties,
) -> Result<()> {
    // SAFETY: a call on a live job, without arguments; `take` frees the string.
    let headers = r.text("GetCustomHeaders", unsafe { http.GetCustomHeaders() })?;
    props.custom_headers = custom_headers(&headers);
    // SAFETY: a call on a live job, without arguments.
    let flags = r.get("GetSecurityFlags", unsafe { http.GetSecurityFlags() }, 0)?;
    props.security_flags = SecurityFlags::new(flags).unwrap_or_default();
    Ok(())
}

/// The job's last error, if it is in an error state and BITS still has the error.
fn read_error(
    job: &IBackgroundCopyJob,
    state: JobState,
    files: &[JobFile],
    r: &mut Reader,
) -> Result<Option<JobErrorInfo>> {
    if !matches!(state, JobState::Error | JobState::TransientError) {
        return Ok(None);
    }
    // SAFETY: a call on a live job, without arguments.
    match unsafe { job.GetError() } {
        Ok(e) => Ok(Some(error_info(&e, files, r)?)),
        Err(e) if e.code() == E_NOTIMPL => {
            r.gaps.push("GetError");
            Ok(None)
        }
        Err(_) => Ok(None), // BG_E_ERROR_INFORMATION_UNAVAILABLE
    }
}

/// A job's files as the model reports them, in BITS's order.
pub(super) fn files(job: &IBackgroundCopyJob) -> Result<Vec<JobFile>> {
    job_files(job)?.iter().map(file_info).collect()
}

/// A job's files, in BITS's order.
pub(super) fn job_files(job: &IBackgroundCopyJob) -> Result<Vec<IBackgroundCopyFile>> {
    // SAFETY: a call on a live job, without arguments.
    let list = unsafe { job.EnumFiles() }.map_err(|e| failed("EnumFiles", &e))?;
    let mut out = Vec::new();
    loop {
        let mut slot = [None];
        let mut got = 0u32;
        // SAFETY: a call on the live enumerator; the slot and the count are locals that outlive
        // the call, which fills at most the slot's one element.
        unsafe { list.Next(&mut slot, &raw mut got) }
            .map_err(|e| failed("IEnumBackgroundCopyFiles::Next", &e))?;
        match slot[0].take().filter(|_| got == 1) {
            Some(file) => out.push(file),
            None => return Ok(out),
        }
    }
}

/// One file as the model reports it: its names and progress.
pub(super) fn file_info(file: &IBackgroundCopyFile) -> Result<JobFile> {
    // SAFETY: a call on a live file, without arguments; `take` frees the string.
    let remote = unsafe { file.GetRemoteName() }.map_err(|e| failed("GetRemoteName", &e))?;
    let remote = take(remote);
    // SAFETY: a call on a live file, without arguments; `take` frees the string.
    let local = unsafe { file.GetLocalName() }.map_err(|e| failed("GetLocalName", &e))?;
    let local = take(local);
    let mut p = BG_FILE_PROGRESS::default();
    // SAFETY: a call on a live file; `p` is a local that outlives the call.
    unsafe { file.GetProgress(&raw mut p) }
        .map_err(|e| failed("IBackgroundCopyFile::GetProgress", &e))?;
    Ok(JobFile::reported(
        remote,
        PathBuf::from(local),
        (p.BytesTotal != u64::MAX).then_some(p.BytesTotal),
        p.BytesTransferred,
        p.Completed.as_bool(),
    ))
}

/// A BITS error object as the model's: its context, code, description and file (by its index
/// among `files`, when it is one of them).
pub(super) fn error_info(
    e: &IBackgroundCopyError,
    files: &[JobFile],
    r: &mut Reader,
) -> Result<JobErrorInfo> {
    let mut ctx = BG_ERROR_CONTEXT::default();
    let mut hr = HRESULT(0);
    // SAFETY: a call on a live error object; both out-parameters are locals that outlive it.
    unsafe { e.GetError(&raw mut ctx, &raw mut hr) }.map_err(|e| err(&e))?;
    let code = ErrorCode(hr.0 as u32);
    // Wine answers 0x800706F4 here: fall back on the model's description of the code.
    // SAFETY: a call on a live error object, with the language id by value.
    let description = if let Ok(p) = unsafe { e.GetErrorDescription(0) } {
        take(p).trim_end().to_owned()
    } else {
        r.gaps.push("GetErrorDescription");
        code.description()
    };
    // SAFETY: a call on a live error object, without arguments.
    let file = match unsafe { e.GetFile() } {
        Ok(f) => {
            let f = file_info(&f)?;
            index_of(files, &f).map(|index| ErrorFile {
                index,
                remote_url: f.remote_url,
                local_path: f.local_path,
            })
        }
        Err(_) => None,
    };
    Ok(JobErrorInfo {
        context: context(ctx),
        code,
        description,
        file,
    })
}
