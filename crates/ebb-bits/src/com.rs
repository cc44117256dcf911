//! The COM side: one thread in the multithreaded apartment owns the `IBackgroundCopyManager`;
//! async callers send it closures and await their results (as `ebb-core`'s store does with its
//! SQLite connection). Events come back through an `IBackgroundCopyCallback2` object.
// COM is an unsafe FFI surface: every call below is a method on a live interface pointer that
// the `windows` crate reference-counts; each block's SAFETY note says what else it relies on.
#![allow(unsafe_code)]

use std::path::PathBuf;
use std::sync::mpsc;

use ebb_core::{
    Completion, CredentialTarget, CredentialsView, Error, ErrorCode, ErrorContext, ErrorFile,
    Event, JobError, JobErrorInfo, JobFile, JobId, JobInfo, JobProperties, JobState, JobType,
    NewFile, NotifyCommandLine, NotifyFlags, Priority, PropertyChange, ProxySettings, Result,
    ResumeOutcome, SecurityFlags, Status, Timestamp,
};
use tokio::sync::{broadcast, oneshot};
use windows::Win32::Foundation::{E_NOTIMPL, FILETIME};
use windows::Win32::Networking::BackgroundIntelligentTransferService::{
    BG_AUTH_CREDENTIALS, BG_AUTH_CREDENTIALS_UNION, BG_AUTH_SCHEME_BASIC, BG_AUTH_TARGET,
    BG_AUTH_TARGET_PROXY, BG_AUTH_TARGET_SERVER, BG_BASIC_CREDENTIALS, BG_ERROR_CONTEXT,
    BG_FILE_INFO, BG_FILE_PROGRESS, BG_FILE_RANGE, BG_JOB_ENUM_ALL_USERS, BG_JOB_PRIORITY,
    BG_JOB_PROGRESS, BG_JOB_PROXY_USAGE, BG_JOB_PROXY_USAGE_AUTODETECT,
    BG_JOB_PROXY_USAGE_NO_PROXY, BG_JOB_PROXY_USAGE_OVERRIDE, BG_JOB_PROXY_USAGE_PRECONFIG,
    BG_JOB_TIMES, BG_JOB_TYPE, BG_S_PARTIAL_COMPLETE, BackgroundCopyManager,
    IBackgroundCopyCallback_Impl, IBackgroundCopyCallback2, IBackgroundCopyCallback2_Impl,
    IBackgroundCopyError, IBackgroundCopyFile, IBackgroundCopyFile2, IBackgroundCopyJob,
    IBackgroundCopyJob2, IBackgroundCopyJob3, IBackgroundCopyJob4, IBackgroundCopyJobHttpOptions,
    IBackgroundCopyManager,
};
use windows::Win32::System::Com::{
    CLSCTX_LOCAL_SERVER, COINIT_MULTITHREADED, CoCreateInstance, CoInitializeEx, CoTaskMemFree,
};
use windows::core::{GUID, HRESULT, HSTRING, Interface, PCWSTR, PWSTR, implement};

use crate::Gaps;

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

/// A COM error as the model's error: its HRESULT is the code (BITS's codes are the model's).
fn err(e: &windows::core::Error) -> Error {
    let code = ErrorCode(e.code().0 as u32);
    let status = if matches!(
        e.code().0 as u32,
        0x8007_06BA | 0x8007_06BE | 0x8007_06BF | 0x8001_0108
    ) {
        Status::Transient // RPC server unavailable, call failed (twice), object disconnected
    } else {
        Status::Permanent
    };
    Error::Remote {
        code,
        status,
        message: format!("BITS: {} (0x{:08x})", e.message(), code.0),
    }
}

/// A failed call, named: `IBackgroundCopyJob::GetTimes: ...`.
fn failed(call: &str, e: &windows::core::Error) -> Error {
    match err(e) {
        Error::Remote {
            code,
            status,
            message,
        } => Error::Remote {
            code,
            status,
            message: format!("{call}: {message}"),
        },
        other => other,
    }
}

/// Read a BITS-allocated string and free it.
fn take(p: PWSTR) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: BITS returned a valid, NUL-terminated string it allocated with CoTaskMemAlloc; we
    // read it once and free it once.
    unsafe {
        let s = p.to_string().unwrap_or_default();
        CoTaskMemFree(Some(p.0 as *const _));
        s
    }
}

fn guid(id: JobId) -> GUID {
    GUID::from_u128(id.as_u128())
}

fn job_id(g: GUID) -> JobId {
    JobId::from_u128(g.to_u128())
}

/// FILETIME (100 ns since 1601) to Unix milliseconds; zero is "never".
fn time(t: FILETIME) -> Option<Timestamp> {
    let ticks = (u64::from(t.dwHighDateTime) << 32) | u64::from(t.dwLowDateTime);
    (ticks != 0).then(|| Timestamp::from_millis((ticks / 10_000) as i64 - 11_644_473_600_000))
}

fn state(s: i32) -> JobState {
    use JobState::*;
    [
        Queued,
        Connecting,
        Transferring,
        Suspended,
        Error,
        TransientError,
        Transferred,
        Acknowledged,
        Cancelled,
    ]
    .get(s as usize)
    .copied()
    .unwrap_or(Error)
}

fn context(c: BG_ERROR_CONTEXT) -> ErrorContext {
    use ErrorContext::*;
    [
        None,
        Unknown,
        GeneralQueueManager,
        QueueManagerNotification,
        LocalFile,
        RemoteFile,
        GeneralTransport,
        RemoteApplication,
    ]
    .get(c.0 as usize)
    .copied()
    .unwrap_or(Unknown)
}

fn priority(p: BG_JOB_PRIORITY) -> Priority {
    Priority::ALL.get(p.0 as usize).copied().unwrap_or_default()
}

fn job_type(t: BG_JOB_TYPE) -> JobType {
    match t.0 {
        1 => JobType::Upload,
        2 => JobType::UploadReply,
        _ => JobType::Download,
    }
}

fn credential_target(t: CredentialTarget) -> BG_AUTH_TARGET {
    match t {
        CredentialTarget::Server => BG_AUTH_TARGET_SERVER,
        CredentialTarget::Proxy => BG_AUTH_TARGET_PROXY,
    }
}

/// Tracks the optional getters that failed while a job was read, and gives their default
/// instead. Wine's BITS answers `E_NOTIMPL` for several, and `ERROR_NOACCESS` (0x800703E6) for
/// `GetDescription` of a job without one; Windows answers them all.
struct Reader {
    gaps: Gaps,
}

impl Reader {
    fn get<T>(&mut self, call: &'static str, r: windows::core::Result<T>, or: T) -> Result<T> {
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
}

impl Ctx {
    fn job(&self, id: JobId) -> Result<IBackgroundCopyJob> {
        let g = guid(id);
        // SAFETY: `g` outlives the call.
        unsafe { self.manager.GetJob(&raw const g) }.map_err(|e| {
            if e.code().0 as u32 == ErrorCode::BG_E_NOT_FOUND.0 {
                Error::NotFound(id.to_string())
            } else {
                err(&e)
            }
        })
    }

    fn create(&self, name: &str, t: JobType) -> Result<JobId> {
        let mut g = GUID::zeroed();
        let mut job: Option<IBackgroundCopyJob> = None;
        let name = HSTRING::from(name);
        // SAFETY: the name, GUID and job slots outlive the call.
        unsafe {
            self.manager
                .CreateJob(&name, BG_JOB_TYPE(t as i32), &raw mut g, &raw mut job)
        }
        .map_err(|e| err(&e))?;
        if let Some(job) = job {
            self.watch(&job);
        }
        Ok(job_id(g))
    }

    /// Route the job's notifications to our callback object.
    fn watch(&self, job: &IBackgroundCopyJob) {
        // Set the job's notify flags to what they are before naming the interface: Wine's
        // service crashed on the first callback of a job whose flags were never set (a read of
        // 0xFFFF...); on Windows this changes nothing.
        // SAFETY: COM calls on a live job.
        unsafe {
            if let Ok(flags) = job.GetNotifyFlags() {
                let _ = job.SetNotifyFlags(flags);
            }
        }
        // SAFETY: the callback is a live COM object we own.
        if let Err(e) = unsafe { job.SetNotifyInterface(&self.callback) } {
            tracing::debug!(error = %e, "BITS refused the notify interface");
        }
    }

    /// `AddFile` for one file, `AddFileSet` (all or none) for several; files with ranges go one
    /// by one through `AddFileWithRanges`, in the order given.
    fn add(&self, id: JobId, files: &[NewFile]) -> Result<()> {
        let job = self.job(id)?;
        self.watch(&job);
        let names = |f: &NewFile| {
            (
                HSTRING::from(&f.remote_url),
                HSTRING::from(f.local_path.as_os_str()),
            )
        };
        if files.iter().all(|f| f.ranges.is_empty()) {
            let strings: Vec<(HSTRING, HSTRING)> = files.iter().map(names).collect();
            if let [(remote, local)] = strings.as_slice() {
                // SAFETY: both strings outlive the call.
                return unsafe { job.AddFile(remote, local) }.map_err(|e| err(&e));
            }
            let set: Vec<BG_FILE_INFO> = strings
                .iter()
                .map(|(r, l)| BG_FILE_INFO {
                    RemoteName: PWSTR(r.as_ptr().cast_mut()),
                    LocalName: PWSTR(l.as_ptr().cast_mut()),
                })
                .collect();
            // SAFETY: the strings the set points into live in `strings` until after the call;
            // BITS only reads them.
            return unsafe { job.AddFileSet(&set) }.map_err(|e| err(&e));
        }
        let job3: IBackgroundCopyJob3 = job.cast().map_err(|e| err(&e))?;
        for f in files {
            let (remote, local) = names(f);
            let ranges: Vec<BG_FILE_RANGE> = f
                .ranges
                .iter()
                .map(|r| BG_FILE_RANGE {
                    InitialOffset: r.offset,
                    Length: r.length.unwrap_or(u64::MAX), // BG_LENGTH_TO_EOF
                })
                .collect();
            // SAFETY: strings and ranges outlive the calls.
            let added = if ranges.is_empty() {
                unsafe { job.AddFile(&remote, &local) }
            } else {
                unsafe { job3.AddFileWithRanges(&remote, &local, &ranges) }
            };
            added.map_err(|e| err(&e))?;
        }
        Ok(())
    }

    fn files(&self, job: &IBackgroundCopyJob) -> Result<Vec<JobFile>> {
        // SAFETY: a live job.
        unsafe { job_files(job)?.iter().map(|f| file_info(f)).collect() }
    }

    fn info(&self, job: &IBackgroundCopyJob) -> Result<(JobInfo, Gaps)> {
        let mut r = Reader { gaps: Vec::new() };
        // SAFETY: COM calls on a live job; every out-parameter is a local that outlives its call.
        unsafe {
            let id = job_id(job.GetId().map_err(|e| failed("GetId", &e))?);
            let state = state(job.GetState().map_err(|e| failed("GetState", &e))?.0);
            let mut progress = BG_JOB_PROGRESS::default();
            job.GetProgress(&raw mut progress)
                .map_err(|e| failed("GetProgress", &e))?;
            let mut times = BG_JOB_TIMES::default();
            let _ = r.get("GetTimes", job.GetTimes(&raw mut times), ())?;
            let display_name =
                take(r.get("GetDisplayName", job.GetDisplayName(), PWSTR::null())?);
            let description = take(r.get("GetDescription", job.GetDescription(), PWSTR::null())?);
            let owner = take(r.get("GetOwner", job.GetOwner(), PWSTR::null())?);
            let mut props = JobProperties {
                priority: priority(r.get("GetPriority", job.GetPriority(), BG_JOB_PRIORITY(2))?),
                ..JobProperties::default()
            };
            props.minimum_retry_delay = r.get(
                "GetMinimumRetryDelay",
                job.GetMinimumRetryDelay(),
                props.minimum_retry_delay,
            )?;
            props.no_progress_timeout = r.get(
                "GetNoProgressTimeout",
                job.GetNoProgressTimeout(),
                props.no_progress_timeout,
            )?;
            props.notify_flags =
                NotifyFlags(r.get("GetNotifyFlags", job.GetNotifyFlags(), props.notify_flags.0)?);
            let (mut usage, mut list, mut bypass) =
                (BG_JOB_PROXY_USAGE::default(), PWSTR::null(), PWSTR::null());
            r.get(
                "GetProxySettings",
                job.GetProxySettings(&raw mut usage, &raw mut list, &raw mut bypass),
                (),
            )?;
            props.proxy = proxy(usage, &take(list), &take(bypass));
            if let Ok(job2) = job.cast::<IBackgroundCopyJob2>() {
                let (mut program, mut params) = (PWSTR::null(), PWSTR::null());
                r.get(
                    "GetNotifyCmdLine",
                    job2.GetNotifyCmdLine(&raw mut program, &raw mut params),
                    (),
                )?;
                let (program, params) = (take(program), take(params));
                if !program.is_empty() {
                    props.notify_command_line =
                        NotifyCommandLine::new(program, Some(params).filter(|p| !p.is_empty()))
                            .ok();
                }
            } else {
                r.gaps.push("IBackgroundCopyJob2");
            }
            if let Ok(job4) = job.cast::<IBackgroundCopyJob4>() {
                props.maximum_download_time = r.get(
                    "GetMaximumDownloadTime",
                    job4.GetMaximumDownloadTime(),
                    props.maximum_download_time,
                )?;
            } else {
                r.gaps.push("IBackgroundCopyJob4");
            }
            if let Ok(http) = job.cast::<IBackgroundCopyJobHttpOptions>() {
                let headers =
                    take(r.get("GetCustomHeaders", http.GetCustomHeaders(), PWSTR::null())?);
                props.custom_headers = headers
                    .split("\r\n")
                    .filter(|l| !l.is_empty())
                    .filter_map(|l| ebb_core::CustomHeader::parse(l).ok())
                    .collect();
                let flags = r.get("GetSecurityFlags", http.GetSecurityFlags(), 0)?;
                props.security_flags = SecurityFlags::new(flags).unwrap_or_default();
            } else {
                r.gaps.push("IBackgroundCopyJobHttpOptions");
            }
            let files = self.files(job)?;
            let error_count = r.get("GetErrorCount", job.GetErrorCount(), 0)?;
            let error = if matches!(state, JobState::Error | JobState::TransientError) {
                match job.GetError() {
                    Ok(e) => Some(error_info(&e, &files, &mut r)?),
                    Err(e) if e.code() == E_NOTIMPL => {
                        r.gaps.push("GetError");
                        None
                    }
                    Err(_) => None, // BG_E_ERROR_INFORMATION_UNAVAILABLE
                }
            } else {
                None
            };
            let job_type = job_type(r.get("GetType", job.GetType(), BG_JOB_TYPE(0))?);
            let created = time(times.CreationTime).unwrap_or(Timestamp::from_millis(0));
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
                properties: props,
                credentials: CredentialsView::default(),
                files,
            };
            Ok((info, r.gaps))
        }
    }

    fn jobs(&self, all_users: bool) -> Result<Vec<JobInfo>> {
        let flags = if all_users { BG_JOB_ENUM_ALL_USERS } else { 0 };
        // SAFETY: COM calls on live interfaces; out-parameters are locals.
        unsafe {
            let list = self
                .manager
                .EnumJobs(flags)
                .map_err(|e| failed("EnumJobs", &e))?;
            let mut out = Vec::new();
            loop {
                let mut slot = [None];
                let mut got = 0u32;
                list.Next(&mut slot, &raw mut got)
                    .map_err(|e| failed("IEnumBackgroundCopyJobs::Next", &e))?;
                let Some(job) = slot[0].take().filter(|_| got == 1) else {
                    break;
                };
                out.push(self.info(&job)?.0);
            }
            Ok(out)
        }
    }

    fn complete(&self, id: JobId) -> Result<Completion> {
        let job = self.job(id)?;
        let files = self.files(&job)?;
        // `Result<()>` would hide BG_S_PARTIAL_COMPLETE: call through the vtable for the HRESULT.
        // SAFETY: the vtable belongs to this live interface; Complete takes only `this`.
        let hr: HRESULT = unsafe { (Interface::vtable(&job).Complete)(Interface::as_raw(&job)) };
        if hr.is_err() {
            return Err(err(&windows::core::Error::from(hr)));
        }
        let kept = files.iter().filter(|f| f.completed).count();
        let code = if hr.0 == BG_S_PARTIAL_COMPLETE {
            ErrorCode::BG_S_PARTIAL_COMPLETE
        } else {
            ErrorCode::S_OK
        };
        Ok(Completion {
            code,
            files_kept: kept,
            files_dropped: files.len() - kept,
        })
    }

    fn set(&self, id: JobId, change: PropertyChange) -> Result<()> {
        let job = self.job(id)?;
        let e = |e: windows::core::Error| err(&e);
        // SAFETY: COM calls on a live job; every string passed outlives its call.
        unsafe {
            match change {
                PropertyChange::DisplayName(n) => job.SetDisplayName(&HSTRING::from(n)).map_err(e),
                PropertyChange::Description(d) => job.SetDescription(&HSTRING::from(d)).map_err(e),
                PropertyChange::Priority(p) => {
                    job.SetPriority(BG_JOB_PRIORITY(p as i32)).map_err(e)
                }
                PropertyChange::MinimumRetryDelay(s) => job.SetMinimumRetryDelay(s).map_err(e),
                PropertyChange::NoProgressTimeout(s) => job.SetNoProgressTimeout(s).map_err(e),
                PropertyChange::MaximumDownloadTime(s) => job
                    .cast::<IBackgroundCopyJob4>()
                    .and_then(|j| j.SetMaximumDownloadTime(s))
                    .map_err(e),
                PropertyChange::NotifyFlags(f) => job.SetNotifyFlags(f.0).map_err(e),
                PropertyChange::NotifyCommandLine(c) => {
                    let job2: IBackgroundCopyJob2 = job.cast().map_err(e)?;
                    match c {
                        Some(c) => {
                            let program = HSTRING::from(&c.program);
                            let params = c.parameters.as_deref().map(HSTRING::from);
                            let params_ptr = params
                                .as_ref()
                                .map_or(PCWSTR::null(), |p| PCWSTR(p.as_ptr()));
                            job2.SetNotifyCmdLine(&program, params_ptr).map_err(e)
                        }
                        None => job2
                            .SetNotifyCmdLine(PCWSTR::null(), PCWSTR::null())
                            .map_err(e),
                    }
                }
                PropertyChange::CustomHeaders(h) => {
                    let http: IBackgroundCopyJobHttpOptions = job.cast().map_err(e)?;
                    if h.is_empty() {
                        http.SetCustomHeaders(PCWSTR::null()).map_err(e)
                    } else {
                        let text: String = h
                            .iter()
                            .map(|h| format!("{}: {}\r\n", h.name, h.value))
                            .collect();
                        http.SetCustomHeaders(&HSTRING::from(text)).map_err(e)
                    }
                }
                PropertyChange::Proxy(p) => {
                    let (usage, list, bypass) = match &p {
                        ProxySettings::Preconfig => (BG_JOB_PROXY_USAGE_PRECONFIG, None, None),
                        ProxySettings::NoProxy => (BG_JOB_PROXY_USAGE_NO_PROXY, None, None),
                        ProxySettings::AutoDetect => (BG_JOB_PROXY_USAGE_AUTODETECT, None, None),
                        ProxySettings::Override {
                            proxy_list,
                            bypass_list,
                        } => (
                            BG_JOB_PROXY_USAGE_OVERRIDE,
                            Some(HSTRING::from(proxy_list.join(" "))),
                            (!bypass_list.is_empty()).then(|| HSTRING::from(bypass_list.join(" "))),
                        ),
                    };
                    let ptr = |s: &Option<HSTRING>| {
                        s.as_ref().map_or(PCWSTR::null(), |s| PCWSTR(s.as_ptr()))
                    };
                    job.SetProxySettings(usage, ptr(&list), ptr(&bypass))
                        .map_err(e)
                }
                PropertyChange::Credentials(target, creds) => {
                    let job2: IBackgroundCopyJob2 = job.cast().map_err(e)?;
                    let target = credential_target(target);
                    match creds {
                        Some(c) => {
                            let (user, password) =
                                (HSTRING::from(&c.user_name), HSTRING::from(&c.password));
                            let auth = BG_AUTH_CREDENTIALS {
                                Target: target,
                                Scheme: BG_AUTH_SCHEME_BASIC,
                                Credentials: BG_AUTH_CREDENTIALS_UNION {
                                    Basic: BG_BASIC_CREDENTIALS {
                                        UserName: PWSTR(user.as_ptr().cast_mut()),
                                        Password: PWSTR(password.as_ptr().cast_mut()),
                                    },
                                },
                            };
                            job2.SetCredentials(&raw const auth).map_err(e)
                        }
                        None => job2
                            .RemoveCredentials(target, BG_AUTH_SCHEME_BASIC)
                            .map_err(e),
                    }
                }
                PropertyChange::SecurityFlags(f) => job
                    .cast::<IBackgroundCopyJobHttpOptions>()
                    .and_then(|h| h.SetSecurityFlags(f.0))
                    .map_err(e),
                PropertyChange::MaxRate(_) => Err(Error::NotSupported(
                    "a per-job rate cap on native BITS (Windows sets bandwidth by Group Policy)"
                        .into(),
                )),
                PropertyChange::CredentialsAcrossOrigins(_) => Err(Error::NotSupported(
                    "choosing where credentials go after a redirect on native BITS".into(),
                )),
            }
        }
    }

    fn set_remote_name(&self, id: JobId, index: usize, url: &str) -> Result<()> {
        let job = self.job(id)?;
        // SAFETY: COM calls on live interfaces; the URL outlives the call.
        unsafe {
            let file = job_files(&job)?
                .into_iter()
                .nth(index)
                .ok_or_else(|| Error::InvalidArgument(format!("job {id} has no file {index}")))?;
            let file2: IBackgroundCopyFile2 = file.cast().map_err(|e| err(&e))?;
            file2
                .SetRemoteName(&HSTRING::from(url))
                .map_err(|e| err(&e))
        }
    }
}

fn proxy(usage: BG_JOB_PROXY_USAGE, list: &str, bypass: &str) -> ProxySettings {
    let words = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    match usage {
        BG_JOB_PROXY_USAGE_NO_PROXY => ProxySettings::NoProxy,
        BG_JOB_PROXY_USAGE_AUTODETECT => ProxySettings::AutoDetect,
        BG_JOB_PROXY_USAGE_OVERRIDE => ProxySettings::Override {
            proxy_list: words(list),
            bypass_list: words(bypass),
        },
        _ => ProxySettings::Preconfig,
    }
}

/// A job's files, in BITS's order.
/// SAFETY (callers): `job` is a live interface.
unsafe fn job_files(job: &IBackgroundCopyJob) -> Result<Vec<IBackgroundCopyFile>> {
    // SAFETY: see the function's contract; out-parameters are locals.
    unsafe {
        let list = job.EnumFiles().map_err(|e| failed("EnumFiles", &e))?;
        let mut out = Vec::new();
        loop {
            let mut slot = [None];
            let mut got = 0u32;
            list.Next(&mut slot, &raw mut got)
                .map_err(|e| failed("IEnumBackgroundCopyFiles::Next", &e))?;
            match slot[0].take().filter(|_| got == 1) {
                Some(file) => out.push(file),
                None => return Ok(out),
            }
        }
    }
}

/// The model's index of `f` among `files` (BITS names files by remote and local name).
fn index_of(files: &[JobFile], f: &JobFile) -> Option<usize> {
    files
        .iter()
        .position(|x| x.remote_url == f.remote_url && x.local_path == f.local_path)
}

/// SAFETY (callers): `file` is a live interface.
unsafe fn file_info(file: &IBackgroundCopyFile) -> Result<JobFile> {
    // SAFETY: see the function's contract; out-parameters are locals.
    unsafe {
        let remote = take(
            file.GetRemoteName()
                .map_err(|e| failed("GetRemoteName", &e))?,
        );
        let local = take(
            file.GetLocalName()
                .map_err(|e| failed("GetLocalName", &e))?,
        );
        let mut p = BG_FILE_PROGRESS::default();
        file.GetProgress(&raw mut p)
            .map_err(|e| failed("IBackgroundCopyFile::GetProgress", &e))?;
        Ok(JobFile::reported(
            remote,
            PathBuf::from(local),
            (p.BytesTotal != u64::MAX).then_some(p.BytesTotal),
            p.BytesTransferred,
            p.Completed.as_bool(),
        ))
    }
}

/// SAFETY (callers): `e` is a live interface.
unsafe fn error_info(
    e: &IBackgroundCopyError,
    files: &[JobFile],
    r: &mut Reader,
) -> Result<JobErrorInfo> {
    // SAFETY: see the function's contract; out-parameters are locals.
    unsafe {
        let mut ctx = BG_ERROR_CONTEXT::default();
        let mut hr = HRESULT(0);
        e.GetError(&raw mut ctx, &raw mut hr).map_err(|e| err(&e))?;
        let code = ErrorCode(hr.0 as u32);
        // Wine answers 0x800706F4 here: fall back on the model's description of the code.
        let description = match e.GetErrorDescription(0) {
            Ok(p) => take(p).trim_end().to_owned(),
            Err(_) => {
                r.gaps.push("GetErrorDescription");
                code.description()
            }
        };
        let file = match e.GetFile() {
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
}

/// The object BITS calls back. It must not call into BITS from inside a callback (Wine's
/// service crashed when it did), so each notice is handed, with its interface, to the COM
/// thread, which reads the job and sends the event.
#[implement(IBackgroundCopyCallback2)]
struct Callback {
    tasks: mpsc::Sender<Task>,
    events: broadcast::Sender<Event>,
}

/// An interface moved from BITS's callback thread to our COM thread.
struct Moved<T>(T);
// SAFETY: both threads are in the multithreaded apartment, where a proxy may be used from any
// thread; the value is used on one thread at a time.
unsafe impl<T> Send for Moved<T> {}

fn id_and_state(job: &IBackgroundCopyJob) -> Option<(JobId, JobState)> {
    // SAFETY: COM calls on a live job, made on the COM thread.
    unsafe { Some((job_id(job.GetId().ok()?), state(job.GetState().ok()?.0))) }
}

impl Callback {
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
        let error = Moved(error.as_ref().cloned());
        self.later(&job, move |job, events| {
            let error = error;
            let Some((job_id, state)) = id_and_state(job) else {
                return;
            };
            let mut r = Reader { gaps: Vec::new() };
            // SAFETY: a live error object, used on the COM thread.
            let info = error
                .0
                .as_ref()
                .and_then(|e| unsafe { error_info(e, &[], &mut r) }.ok());
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
        let file = Moved(file.as_ref().cloned());
        self.later(&job, move |job, events| {
            let file = file;
            let Some((job_id, _)) = id_and_state(job) else {
                return;
            };
            // The model names files by index: find this one among the job's.
            // SAFETY: live objects, used on the COM thread.
            let index = unsafe {
                let want = file.0.as_ref().and_then(|f| file_info(f).ok());
                let all = job_files(job)
                    .and_then(|fs| fs.iter().map(|f| file_info(f)).collect::<Result<Vec<_>>>());
                want.zip(all.ok())
                    .and_then(|(want, all)| index_of(&all, &want))
            };
            if let Some(file_index) = index {
                let _ = events.send(Event::FileTransferred { job_id, file_index });
            }
        });
        Ok(())
    }
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
        self.call(move |c| c.add(id, &files)).await
    }

    pub(crate) async fn resume(&self, id: JobId) -> Result<ResumeOutcome> {
        self.call(move |c| {
            let job = c.job(id)?;
            c.watch(&job);
            // SAFETY: COM calls on a live job.
            let before = state(unsafe { job.GetState() }.map_err(|e| err(&e))?.0);
            if before == JobState::Transferred {
                return Ok(ResumeOutcome::AlreadyTransferred);
            }
            // SAFETY: as above.
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
        // SAFETY: a COM call on a live job.
        self.call(move |c| unsafe { c.job(id)?.Suspend() }.map_err(|e| err(&e)))
            .await
    }

    pub(crate) async fn cancel(&self, id: JobId) -> Result<()> {
        self.call(move |c| {
            let job = c.job(id)?;
            // Unhook our callback first: Wine's service crashed later when a job cancelled in
            // mid-transfer still had it. On Windows a cancelled job calls nobody anyway.
            // SAFETY: COM calls on a live job.
            unsafe {
                let _ = job.SetNotifyInterface(None::<&windows::core::IUnknown>);
                job.Cancel()
            }
            .map_err(|e| err(&e))
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
            let before = c.files(&job)?;
            let job3: IBackgroundCopyJob3 = job.cast().map_err(|e| err(&e))?;
            // SAFETY: a COM call on a live job; the strings outlive it.
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

    pub(crate) async fn job(&self, id: JobId) -> Result<(JobInfo, Gaps)> {
        self.call(move |c| c.info(&c.job(id)?)).await
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
