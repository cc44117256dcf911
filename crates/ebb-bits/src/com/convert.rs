//! Conversions between BITS's COM values and the model's: errors, strings BITS allocated, job
//! ids, times, states, error contexts, priorities, job types, proxies and headers.

use std::fmt::Write as _;

use ebb_core::{
    CredentialTarget, CustomHeader, Error, ErrorCode, ErrorContext, JobFile, JobId, JobState,
    JobType, Priority, ProxySettings, Status, Timestamp,
};
use windows::Win32::Foundation::FILETIME;
use windows::Win32::Networking::BackgroundIntelligentTransferService::{
    BG_AUTH_TARGET, BG_AUTH_TARGET_PROXY, BG_AUTH_TARGET_SERVER, BG_ERROR_CONTEXT, BG_JOB_PRIORITY,
    BG_JOB_PROXY_USAGE, BG_JOB_PROXY_USAGE_AUTODETECT, BG_JOB_PROXY_USAGE_NO_PROXY,
    BG_JOB_PROXY_USAGE_OVERRIDE, BG_JOB_PROXY_USAGE_PRECONFIG, BG_JOB_TYPE,
};
use windows::Win32::System::Com::CoTaskMemFree;
use windows::core::{GUID, HSTRING, PWSTR};

/// A COM error as the model's error: its HRESULT is the code (BITS's codes are the model's).
pub(super) fn err(e: &windows::core::Error) -> Error {
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
pub(super) fn failed(call: &str, e: &windows::core::Error) -> Error {
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
pub(super) fn take(p: PWSTR) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: `p` is not null, and BITS returned it as a valid, NUL-terminated wide string; it is
    // read here once, before it is freed below.
    let s = unsafe { p.to_string() }.unwrap_or_default();
    // SAFETY: BITS allocated the string with CoTaskMemAlloc and gave it to us; it is freed once,
    // here, and `p` is not used again.
    unsafe { CoTaskMemFree(Some(p.0 as *const _)) };
    s
}

/// The model's job id as BITS's GUID.
pub(super) fn guid(id: JobId) -> GUID {
    GUID::from_u128(id.as_u128())
}

/// BITS's job GUID as the model's job id.
pub(super) fn job_id(g: GUID) -> JobId {
    JobId::from_u128(g.to_u128())
}

/// FILETIME (100 ns since 1601) to Unix milliseconds; zero is "never".
pub(super) fn time(t: FILETIME) -> Option<Timestamp> {
    let ticks = (u64::from(t.dwHighDateTime) << 32) | u64::from(t.dwLowDateTime);
    (ticks != 0).then(|| Timestamp::from_millis((ticks / 10_000) as i64 - 11_644_473_600_000))
}

/// A `BG_JOB_STATE` as the model's state (BITS's numbers); an unknown one is Error.
pub(super) fn state(s: i32) -> JobState {
    [
        JobState::Queued,
        JobState::Connecting,
        JobState::Transferring,
        JobState::Suspended,
        JobState::Error,
        JobState::TransientError,
        JobState::Transferred,
        JobState::Acknowledged,
        JobState::Cancelled,
    ]
    .get(s as usize)
    .copied()
    .unwrap_or(JobState::Error)
}

/// A `BG_ERROR_CONTEXT` as the model's error context; an unknown one is Unknown.
pub(super) fn context(c: BG_ERROR_CONTEXT) -> ErrorContext {
    [
        ErrorContext::None,
        ErrorContext::Unknown,
        ErrorContext::GeneralQueueManager,
        ErrorContext::QueueManagerNotification,
        ErrorContext::LocalFile,
        ErrorContext::RemoteFile,
        ErrorContext::GeneralTransport,
        ErrorContext::RemoteApplication,
    ]
    .get(c.0 as usize)
    .copied()
    .unwrap_or(ErrorContext::Unknown)
}

/// A `BG_JOB_PRIORITY` as the model's priority; an unknown one is the default.
pub(super) fn priority(p: BG_JOB_PRIORITY) -> Priority {
    Priority::ALL.get(p.0 as usize).copied().unwrap_or_default()
}

/// A `BG_JOB_TYPE` as the model's job type; an unknown one is Download.
pub(super) fn job_type(t: BG_JOB_TYPE) -> JobType {
    match t.0 {
        1 => JobType::Upload,
        2 => JobType::UploadReply,
        _ => JobType::Download,
    }
}

/// Whom credentials are for, as BITS's `BG_AUTH_TARGET`.
pub(super) fn credential_target(t: CredentialTarget) -> BG_AUTH_TARGET {
    match t {
        CredentialTarget::Server => BG_AUTH_TARGET_SERVER,
        CredentialTarget::Proxy => BG_AUTH_TARGET_PROXY,
    }
}

/// The job's proxy settings from `GetProxySettings`'s usage and space-separated lists.
pub(super) fn proxy(usage: BG_JOB_PROXY_USAGE, list: &str, bypass: &str) -> ProxySettings {
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

/// The proxy settings as `SetProxySettings` takes them: the usage, the proxy list and the bypass
/// list (space-separated; none where BITS wants a null).
pub(super) fn proxy_usage(
    p: &ProxySettings,
) -> (BG_JOB_PROXY_USAGE, Option<HSTRING>, Option<HSTRING>) {
    match p {
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
    }
}

/// The job's custom headers from `GetCustomHeaders`' text (CRLF-separated `Name: value` lines);
/// lines that do not parse are left out.
pub(super) fn custom_headers(text: &str) -> Vec<CustomHeader> {
    text.split("\r\n")
        .filter(|l| !l.is_empty())
        .filter_map(|l| CustomHeader::parse(l).ok())
        .collect()
}

/// The custom headers as `SetCustomHeaders` takes them: one `Name: value` line each, CRLF after
/// each.
pub(super) fn custom_headers_text(headers: &[CustomHeader]) -> String {
    headers.iter().fold(String::new(), |mut text, h| {
        // Writing to a String cannot fail.
        let _ = write!(text, "{}: {}\r\n", h.name, h.value);
        text
    })
}

/// The model's index of `f` among `files` (BITS names files by remote and local name).
pub(super) fn index_of(files: &[JobFile], f: &JobFile) -> Option<usize> {
    files
        .iter()
        .position(|x| x.remote_url == f.remote_url && x.local_path == f.local_path)
}
