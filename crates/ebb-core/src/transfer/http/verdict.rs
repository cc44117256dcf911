//! What a response means for the file being fetched, decided without I/O: follow a redirect,
//! answer a challenge, start over, fail, or read the body (and how). The fetch loop acts on
//! the verdict; this module only reads the status, the headers and what was asked.

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION};
use url::Url;

use super::headers::{
    ContentRange, changed, content_length, is_identity, parse_content_range, validators_of,
};
use super::http_failure;
use crate::error::{ErrorCode, ErrorContext, Status};
use crate::model::{JobFile, JobProperties, RedirectPolicy, Validators};
use crate::transfer::Failure;
use crate::transfer::segments::{self, Segment};

/// The request a response answers.
#[derive(Clone, Copy, Debug)]
pub(super) struct Asked<'a> {
    pub url: &'a Url,
    pub seg: Segment,
    /// The whole remote file is wanted (no byte ranges of it).
    pub whole: bool,
    pub sent_if_range: bool,
    /// Redirects followed so far.
    pub hops: u8,
    /// Credentials were not sent yet, the job has them, and they may go to this URL: a 401
    /// asks for them. Otherwise a 401 is final.
    pub may_authenticate: bool,
    /// The remote file's size, once a 206 told it (byte-range files).
    pub remote_size: Option<u64>,
}

/// What the fetch loop does next.
#[derive(Debug)]
pub(super) enum Verdict {
    /// Ask again at this URL.
    Redirect(Url),
    /// Ask again with the job's server credentials.
    Authenticate,
    /// Throw the bytes away and start the file over; `distrust_ranges`: the server's 206s
    /// cannot be trusted, so fetch the whole file from the first byte.
    Restart {
        distrust_ranges: bool,
    },
    /// Read the whole file (a 200); `restart_first`: the bytes so far go first.
    Whole {
        validators: Validators,
        length: Option<u64>,
        restart_first: bool,
    },
    /// Read the asked range (a 206 that matches the request).
    Range {
        validators: Validators,
        range: ContentRange,
        /// The remote size it told, when it is news and within bounds (byte-range files).
        remote_size: Option<u64>,
    },
    Fail(Failure),
}

fn protocol_failure(status: Status, code: ErrorCode, detail: String) -> Failure {
    Failure::new(status, ErrorContext::RemoteFile, code, detail)
}

/// The `Range` value: open-ended for a whole file (its end is the file's end anyway), closed
/// for a byte range of the file.
pub(super) fn range_header(seg: Segment, whole: bool) -> String {
    match seg.end {
        Some(end) if !whole => format!("bytes={}-{}", seg.start, end - 1),
        _ => format!("bytes={}-", seg.start),
    }
}

/// The verdict on a response of `status` with `headers` to `asked`, for `file` of a job with
/// `props`.
pub(super) fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    asked: &Asked<'_>,
    file: &JobFile,
    props: &JobProperties,
) -> Verdict {
    let url = asked.url;
    match status {
        StatusCode::MOVED_PERMANENTLY
        | StatusCode::FOUND
        | StatusCode::SEE_OTHER
        | StatusCode::TEMPORARY_REDIRECT
        | StatusCode::PERMANENT_REDIRECT => {
            match redirect_target(status.as_u16(), headers, url, props, asked.hops) {
                Ok(to) => Verdict::Redirect(to),
                Err(f) => Verdict::Fail(f),
            }
        }
        StatusCode::UNAUTHORIZED if asked.may_authenticate => Verdict::Authenticate,
        StatusCode::OK => whole_body(headers, asked, file),
        StatusCode::PARTIAL_CONTENT => range_body(headers, asked, file),
        StatusCode::RANGE_NOT_SATISFIABLE if asked.whole => {
            tracing::info!(%url, "416 for our range; restarting the file");
            Verdict::Restart {
                distrust_ranges: false,
            }
        }
        StatusCode::RANGE_NOT_SATISFIABLE => Verdict::Fail(protocol_failure(
            Status::Permanent,
            ErrorCode::BG_E_INVALID_RANGE,
            format!(
                "({url} cannot serve {})",
                range_header(asked.seg, asked.whole)
            ),
        )),
        s if s.is_success() => Verdict::Fail(protocol_failure(
            Status::Permanent,
            ErrorCode::BG_E_INVALID_SERVER_RESPONSE,
            format!("({url} answered {s})"),
        )),
        s => Verdict::Fail(http_failure(s.as_u16(), headers, url)),
    }
}

/// A 200: the whole file. For byte ranges that is a server without range support, or one
/// whose file changed (If-Range failed).
fn whole_body(headers: &HeaderMap, asked: &Asked<'_>, file: &JobFile) -> Verdict {
    let url = asked.url;
    if !asked.whole {
        if asked.sent_if_range {
            tracing::info!(%url, "remote file changed; restarting its ranges");
            return Verdict::Restart {
                distrust_ranges: false,
            };
        }
        return Verdict::Fail(protocol_failure(
            Status::Permanent,
            ErrorCode::BG_E_INSUFFICIENT_RANGE_SUPPORT,
            format!("({url} answered a range request with the whole file)"),
        ));
    }
    if file.bytes_transferred > 0 {
        tracing::info!(%url, had = file.bytes_transferred, "server sent the whole file; restarting it");
    }
    Verdict::Whole {
        validators: validators_of(headers, is_identity(headers)),
        length: content_length(headers),
        restart_first: file.bytes_transferred > 0,
    }
}

/// A 206: the asked range, if its `Content-Range`, length and encoding say exactly that.
fn range_body(headers: &HeaderMap, asked: &Asked<'_>, file: &JobFile) -> Verdict {
    let (url, seg, whole) = (asked.url, asked.seg, asked.whole);
    let new = validators_of(headers, false);
    let cr = parse_content_range(headers);
    let length = content_length(headers);
    let honest = cr.is_some_and(|cr| {
        cr.start == seg.start
            && seg.end.is_none_or(|end| cr.end_exclusive <= end)
            && length.is_none_or(|l| l == cr.end_exclusive - cr.start)
            && (!whole || file.bytes_total.is_none() || cr.total == file.bytes_total)
    }) && is_identity(headers);
    let Some(range) = cr.filter(|_| honest) else {
        if !whole {
            return Verdict::Fail(protocol_failure(
                Status::Permanent,
                ErrorCode::BG_E_INVALID_SERVER_RESPONSE,
                format!(
                    "({url}: Content-Range or encoding of a 206 does not match the request {})",
                    range_header(seg, whole)
                ),
            ));
        }
        tracing::warn!(%url, range = %range_header(seg, whole), "server's 206 does not match the request; fetching the whole file");
        return Verdict::Restart {
            distrust_ranges: true,
        };
    };
    if file.bytes_transferred > 0 && changed(&file.validators, &new) {
        tracing::info!(%url, "remote file changed; restarting it");
        return Verdict::Restart {
            distrust_ranges: false,
        };
    }
    let remote_size = range
        .total
        .filter(|_| !whole && asked.remote_size.is_none());
    if let Some(why) = remote_size.and_then(|size| segments::out_of_bounds(file, size)) {
        return Verdict::Fail(protocol_failure(
            Status::Permanent,
            ErrorCode::BG_E_INVALID_RANGE,
            why,
        ));
    }
    Verdict::Range {
        validators: new,
        range,
        remote_size,
    }
}

pub(super) fn redirect_target(
    status: u16,
    headers: &HeaderMap,
    from: &Url,
    props: &JobProperties,
    hops: u8,
) -> Result<Url, Failure> {
    let refuse = |why: String| {
        Failure::new(
            Status::Permanent,
            ErrorContext::RemoteFile,
            ErrorCode::http(status),
            why,
        )
    };
    let location = headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| refuse(format!("({from}: redirect without a Location)")))?;
    let to = from
        .join(location)
        .map_err(|e| refuse(format!("({from}: bad Location {location:?}: {e})")))?;
    if props.security_flags.redirect_policy() == RedirectPolicy::Disallow {
        return Err(refuse(format!(
            "({from} redirects to {to}; the job's redirect policy forbids redirects)"
        )));
    }
    if !matches!(to.scheme(), "http" | "https") {
        return Err(refuse(format!("({from} redirects to unsupported {to})")));
    }
    if from.scheme() == "https"
        && to.scheme() == "http"
        && !props.security_flags.allows_https_to_http()
    {
        return Err(refuse(format!(
            "({from} redirects from HTTPS to HTTP {to}; the job does not allow it)"
        )));
    }
    if hops >= 10 {
        return Err(refuse(format!("({from}: more than 10 redirects)")));
    }
    Ok(to)
}

#[cfg(test)]
mod tests;
