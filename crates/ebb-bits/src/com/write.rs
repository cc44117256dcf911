//! Changing BITS: creating a job, adding files, completing a job, setting its properties and
//! renaming a file's remote URL.
//!
//! Every COM call here is on an interface held by reference: the `windows` crate keeps it
//! alive (reference-counted) while we hold it, and we call it on the COM thread, which is in
//! the multithreaded apartment.

use ebb_core::{
    BasicCredentials, Completion, CredentialTarget, CustomHeader, Error, ErrorCode, JobId, JobType,
    NewFile, NotifyCommandLine, PropertyChange, ProxySettings, Result,
};
use windows::Win32::Networking::BackgroundIntelligentTransferService::{
    BG_AUTH_CREDENTIALS, BG_AUTH_CREDENTIALS_UNION, BG_AUTH_SCHEME_BASIC, BG_BASIC_CREDENTIALS,
    BG_FILE_INFO, BG_FILE_RANGE, BG_JOB_PRIORITY, BG_JOB_TYPE, BG_S_PARTIAL_COMPLETE,
    IBackgroundCopyFile2, IBackgroundCopyJob, IBackgroundCopyJob2, IBackgroundCopyJob3,
    IBackgroundCopyJob4, IBackgroundCopyJobHttpOptions,
};
use windows::core::{GUID, HRESULT, HSTRING, Interface, PCWSTR, PWSTR};

use super::Ctx;
use super::convert::{credential_target, custom_headers_text, err, job_id, proxy_usage};
use super::read::{files, job_files};

impl Ctx {
    /// A new job (`CreateJob`), its notifications routed to our callback object.
    pub(super) fn create(&self, name: &str, t: JobType) -> Result<JobId> {
        let mut g = GUID::zeroed();
        let mut job: Option<IBackgroundCopyJob> = None;
        let name = HSTRING::from(name);
        // SAFETY: a call on the live manager; the name, GUID and job slots are locals that
        // outlive the call.
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
    pub(super) fn watch(&self, job: &IBackgroundCopyJob) {
        // Set the job's notify flags to what they are before naming the interface: Wine's
        // service crashed on the first callback of a job whose flags were never set (a read of
        // 0xFFFF...); on Windows this changes nothing.
        // SAFETY: a call on a live job, without arguments.
        if let Ok(flags) = unsafe { job.GetNotifyFlags() } {
            // SAFETY: a call on a live job, with the flags by value.
            let _ = unsafe { job.SetNotifyFlags(flags) };
        }
        // SAFETY: a call on a live job; the callback is a live COM object the COM thread owns,
        // and BITS takes its own reference to it.
        if let Err(e) = unsafe { job.SetNotifyInterface(&self.callback) } {
            tracing::debug!(error = %e, "BITS refused the notify interface");
        }
    }

    /// `AddFile` for one file, `AddFileSet` (all or none) for several; files with ranges go one
    /// by one through `AddFileWithRanges`, in the order given.
    pub(super) fn add(&self, id: JobId, files: &[NewFile]) -> Result<()> {
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
                // SAFETY: a call on a live job; both strings outlive the call.
                return unsafe { job.AddFile(remote, local) }.map_err(|e| err(&e));
            }
            let set: Vec<BG_FILE_INFO> = strings
                .iter()
                .map(|(r, l)| BG_FILE_INFO {
                    RemoteName: PWSTR(r.as_ptr().cast_mut()),
                    LocalName: PWSTR(l.as_ptr().cast_mut()),
                })
                .collect();
            // SAFETY: a call on a live job; the strings the set points into live in `strings`
            // until after the call, and BITS only reads them.
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
            let added = if ranges.is_empty() {
                // SAFETY: a call on a live job; both strings outlive the call.
                unsafe { job.AddFile(&remote, &local) }
            } else {
                // SAFETY: a call on a live job; the strings and ranges outlive the call, and
                // BITS only reads them.
                unsafe { job3.AddFileWithRanges(&remote, &local, &ranges) }
            };
            added.map_err(|e| err(&e))?;
        }
        Ok(())
    }

    /// `Complete`: the transferred files take their final names; with BG_S_PARTIAL_COMPLETE,
    /// the others are dropped.
    pub(super) fn complete(&self, id: JobId) -> Result<Completion> {
        let job = self.job(id)?;
        let files = files(&job)?;
        // `Result<()>` would hide BG_S_PARTIAL_COMPLETE: call through the vtable for the HRESULT.
        // SAFETY: the vtable belongs to this live interface, and its Complete takes only `this`,
        // the interface's own raw pointer.
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

    /// One `Set*` call of BITS for the change; NotSupported for what BITS has no call for.
    /// `IBackgroundCopyJob`'s own setters are called here; the others have a helper each.
    pub(super) fn set(&self, id: JobId, change: PropertyChange) -> Result<()> {
        let job = self.job(id)?;
        let e = |e: windows::core::Error| err(&e);
        match change {
            // SAFETY: a call on a live job; the string outlives the call.
            PropertyChange::DisplayName(n) => {
                unsafe { job.SetDisplayName(&HSTRING::from(n)) }.map_err(e)
            }
            // SAFETY: a call on a live job; the string outlives the call.
            PropertyChange::Description(d) => {
                unsafe { job.SetDescription(&HSTRING::from(d)) }.map_err(e)
            }
            // SAFETY: a call on a live job, with the priority by value.
            PropertyChange::Priority(p) => {
                unsafe { job.SetPriority(BG_JOB_PRIORITY(p as i32)) }.map_err(e)
            }
            // SAFETY: a call on a live job, with the seconds by value.
            PropertyChange::MinimumRetryDelay(s) => {
                unsafe { job.SetMinimumRetryDelay(s) }.map_err(e)
            }
            // SAFETY: a call on a live job, with the seconds by value.
            PropertyChange::NoProgressTimeout(s) => {
                unsafe { job.SetNoProgressTimeout(s) }.map_err(e)
            }
            // SAFETY: a call on a live job, with the flags by value.
            PropertyChange::NotifyFlags(f) => unsafe { job.SetNotifyFlags(f.0) }.map_err(e),
            PropertyChange::Proxy(p) => set_proxy(&job, &p),
            PropertyChange::MaximumDownloadTime(s) => set_maximum_download_time(&job, s),
            PropertyChange::NotifyCommandLine(c) => set_notify_command_line(&job, c.as_ref()),
            PropertyChange::Credentials(target, c) => set_credentials(&job, target, c.as_ref()),
            PropertyChange::CustomHeaders(h) => set_custom_headers(&job, &h),
            PropertyChange::SecurityFlags(f) => set_security_flags(&job, f.0),
            PropertyChange::MaxRate(_) => Err(Error::NotSupported(
                "a per-job rate cap on native BITS (Windows sets bandwidth by Group Policy)".into(),
            )),
            PropertyChange::CredentialsAcrossOrigins(_) => Err(Error::NotSupported(
                "choosing where credentials go after a redirect on native BITS".into(),
            )),
            PropertyChange::ReplyFileName(path) => self.set_reply_file_name(id, path.as_ref()),
            PropertyChange::CaFile(_) => Err(Error::NotSupported(
                "a per-job CA file on native BITS (Windows trusts its certificate store)".into(),
            )),
            PropertyChange::Connections(_) => Err(Error::NotSupported(
                "several connections per file on native BITS".into(),
            )),
        }
    }

    /// `SetRemoteName` of the job's file at `index` (in BITS's order).
    pub(super) fn set_remote_name(&self, id: JobId, index: usize, url: &str) -> Result<()> {
        let job = self.job(id)?;
        let file = job_files(&job)?
            .into_iter()
            .nth(index)
            .ok_or_else(|| Error::InvalidArgument(format!("job {id} has no file {index}")))?;
        let file2: IBackgroundCopyFile2 = file.cast().map_err(|e| err(&e))?;
        // SAFETY: a call on a live file; the URL outlives the call.
        unsafe { file2.SetRemoteName(&HSTRING::from(url)) }.map_err(|e| err(&e))
    }
}

/// `SetProxySettings`: the usage and the space-separated proxy and bypass lists.
fn set_proxy(job: &IBackgroundCopyJob, p: &ProxySettings) -> Result<()> {
    let (usage, list, bypass) = proxy_usage(p);
    let ptr = |s: &Option<HSTRING>| s.as_ref().map_or(PCWSTR::null(), |s| PCWSTR(s.as_ptr()));
    // SAFETY: a call on a live job; the lists live in `list` and `bypass` until after the call
    // (or are null), and BITS only reads them.
    unsafe { job.SetProxySettings(usage, ptr(&list), ptr(&bypass)) }.map_err(|e| err(&e))
}

/// `SetMaximumDownloadTime`, of `IBackgroundCopyJob4`.
fn set_maximum_download_time(job: &IBackgroundCopyJob, seconds: u32) -> Result<()> {
    job.cast::<IBackgroundCopyJob4>()
        // SAFETY: a call on a live job, with the seconds by value.
        .and_then(|j| unsafe { j.SetMaximumDownloadTime(seconds) })
        .map_err(|e| err(&e))
}

/// `SetNotifyCmdLine`, of `IBackgroundCopyJob2`: the program and its parameters, or none.
fn set_notify_command_line(job: &IBackgroundCopyJob, c: Option<&NotifyCommandLine>) -> Result<()> {
    let job2: IBackgroundCopyJob2 = job.cast().map_err(|e| err(&e))?;
    let Some(c) = c else {
        // SAFETY: a call on a live job, with two null strings (no program).
        return unsafe { job2.SetNotifyCmdLine(PCWSTR::null(), PCWSTR::null()) }
            .map_err(|e| err(&e));
    };
    let program = HSTRING::from(&c.program);
    let params = c.parameters.as_deref().map(HSTRING::from);
    let params_ptr = params
        .as_ref()
        .map_or(PCWSTR::null(), |p| PCWSTR(p.as_ptr()));
    // SAFETY: a call on a live job; `program` and `params` (which `params_ptr` points into, or
    // is null) outlive the call, and BITS only reads them.
    unsafe { job2.SetNotifyCmdLine(&program, params_ptr) }.map_err(|e| err(&e))
}

/// `SetCredentials` (basic scheme) for the target, or `RemoveCredentials` with none; of
/// `IBackgroundCopyJob2`.
fn set_credentials(
    job: &IBackgroundCopyJob,
    target: CredentialTarget,
    creds: Option<&BasicCredentials>,
) -> Result<()> {
    let job2: IBackgroundCopyJob2 = job.cast().map_err(|e| err(&e))?;
    let target = credential_target(target);
    let Some(c) = creds else {
        // SAFETY: a call on a live job, with the target and scheme by value.
        return unsafe { job2.RemoveCredentials(target, BG_AUTH_SCHEME_BASIC) }
            .map_err(|e| err(&e));
    };
    let (user, password) = (HSTRING::from(&c.user_name), HSTRING::from(&c.password));
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
    // SAFETY: a call on a live job; `auth` and the strings it points into (`user`, `password`)
    // outlive the call, and BITS only reads them.
    unsafe { job2.SetCredentials(&raw const auth) }.map_err(|e| err(&e))
}

/// `SetCustomHeaders`, of `IBackgroundCopyJobHttpOptions`: `Name: value` lines, or null for
/// none.
fn set_custom_headers(job: &IBackgroundCopyJob, headers: &[CustomHeader]) -> Result<()> {
    let http: IBackgroundCopyJobHttpOptions = job.cast().map_err(|e| err(&e))?;
    if headers.is_empty() {
        // SAFETY: a call on a live job, with a null string (no headers).
        return unsafe { http.SetCustomHeaders(PCWSTR::null()) }.map_err(|e| err(&e));
    }
    let text = HSTRING::from(custom_headers_text(headers));
    // SAFETY: a call on a live job; `text` outlives the call, and BITS only reads it.
    unsafe { http.SetCustomHeaders(&text) }.map_err(|e| err(&e))
}

/// `SetSecurityFlags`, of `IBackgroundCopyJobHttpOptions`.
fn set_security_flags(job: &IBackgroundCopyJob, flags: u32) -> Result<()> {
    job.cast::<IBackgroundCopyJobHttpOptions>()
        // SAFETY: a call on a live job, with the flags by value.
        .and_then(|h| unsafe { h.SetSecurityFlags(flags) })
        .map_err(|e| err(&e))
}
