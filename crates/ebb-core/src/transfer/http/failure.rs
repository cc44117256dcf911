//! Failures of an HTTP exchange, classified as BITS does: transport or server, transient or
//! permanent, with BITS's codes.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use url::Url;

use super::super::Failure;
use crate::error::{ErrorCode, ErrorContext, Status};

pub(in crate::transfer) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Every error in a chain. `io::Error` hides the error it wraps from `source()` (it returns the
/// wrapped error's source instead), so wrapped errors are visited explicitly.
fn chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        out.push(err);
        next = match err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner),
            None => err.source(),
        };
    }
    out
}

/// The certificate problem at the root of a transport error, if that is what it is.
pub(in crate::transfer) fn certificate_error(
    e: &reqwest::Error,
) -> Option<rustls::CertificateError> {
    chain(e)
        .into_iter()
        .find_map(|err| match err.downcast_ref::<rustls::Error>() {
            Some(rustls::Error::InvalidCertificate(c)) => Some(c.clone()),
            _ => None,
        })
}

/// Whether the server sent more header than the client accepts (hyper's limits): no retry
/// will make it smaller.
fn headers_too_large(e: &reqwest::Error) -> bool {
    chain(e).into_iter().any(|err| {
        err.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_parse_too_large)
    })
}

/// The OS error number at the root of a transport error, if any.
fn os_error(e: &reqwest::Error) -> Option<i32> {
    chain(e).into_iter().find_map(|err| {
        err.downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
    })
}

/// BITS's code for a transport failure: no route to any network is BITS's "network
/// disconnected"; otherwise timeouts, failed connects and broken connections.
fn transport_code(errno: Option<i32>, timeout: bool, connect: bool) -> ErrorCode {
    #[cfg(unix)]
    const NETWORK_DOWN: [i32; 2] = [libc::ENETUNREACH, libc::ENETDOWN];
    #[cfg(windows)]
    const NETWORK_DOWN: [i32; 2] = [10051, 10050]; // WSAENETUNREACH, WSAENETDOWN
    #[cfg(not(any(unix, windows)))]
    const NETWORK_DOWN: [i32; 0] = [];
    if errno.is_some_and(|e| NETWORK_DOWN.contains(&e)) {
        return ErrorCode::BG_E_NETWORK_DISCONNECTED;
    }
    if timeout {
        ErrorCode::E_TIMEOUT
    } else if connect {
        ErrorCode::BG_E_CONNECT_FAILURE
    } else {
        ErrorCode::BG_E_CONNECTION_CLOSED
    }
}

/// A failure before any response: connection refused, DNS, TLS, timeouts.
pub(in crate::transfer) fn transport_failure(url: &Url, e: &reqwest::Error) -> Failure {
    if let Some(cert) = certificate_error(e) {
        let (code, why) = crate::transfer::tls::certificate_code(&cert);
        let detail = crate::transfer::tls::certificate_detail(&cert).map_or_else(
            || format!("({url}: {why})"),
            |d| format!("({url}: {why}: {d})"),
        );
        return Failure::new(
            Status::Permanent,
            ErrorContext::GeneralTransport,
            code,
            detail,
        );
    }
    let detail = format!("({url}: {})", error_chain(e));
    if headers_too_large(e) {
        return Failure::new(
            Status::Permanent,
            ErrorContext::RemoteFile,
            ErrorCode::BG_E_INVALID_SERVER_RESPONSE,
            format!("({url}: the response headers are too large)"),
        );
    }
    let code = transport_code(os_error(e), e.is_timeout(), e.is_connect());
    Failure::new(
        Status::Transient,
        ErrorContext::GeneralTransport,
        code,
        detail,
    )
}

/// An error status from the server; transient for 408, 429 and most 5xx, as BITS does.
pub(super) fn http_failure(status: u16, headers: &HeaderMap, url: &Url) -> Failure {
    let transient =
        matches!(status, 408 | 429) || (500..600).contains(&status) && !matches!(status, 501 | 505);
    let status_kind = if transient {
        Status::Transient
    } else {
        Status::Permanent
    };
    let mut f = Failure::new(
        status_kind,
        ErrorContext::RemoteFile,
        ErrorCode::http(status),
        format!("({url})"),
    );
    f.retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    f
}

/// The longest `Retry-After` honoured: a server may ask for a pause, not park a job for years.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

fn parse_retry_after(text: &str) -> Option<Duration> {
    let text = text.trim();
    let wait = if let Ok(secs) = text.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let when = httpdate::parse_http_date(text).ok()?;
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::http::test_headers as headers;

    #[test]
    fn status_classification() {
        let url = Url::parse("http://127.0.0.1/x").unwrap();
        let h = headers(&[(RETRY_AFTER, "7")]);
        let f = http_failure(503, &h, &url);
        assert_eq!(f.status, Status::Transient);
        assert_eq!(f.retry_after, Some(Duration::from_secs(7)));
        for far in ["99999999999", "Fri, 31 Dec 9999 23:59:59 GMT"] {
            let h = headers(&[(RETRY_AFTER, far)]);
            assert_eq!(
                http_failure(503, &h, &url).retry_after,
                Some(MAX_RETRY_AFTER)
            );
        }
        assert_eq!(f.error.code.0, 0x8019_01F7);
        assert_eq!(
            http_failure(404, &HeaderMap::new(), &url).status,
            Status::Permanent
        );
        assert_eq!(
            http_failure(501, &HeaderMap::new(), &url).status,
            Status::Permanent
        );
        assert_eq!(
            http_failure(429, &HeaderMap::new(), &url).status,
            Status::Transient
        );
    }

    #[test]
    fn transport_codes() {
        assert_eq!(
            transport_code(Some(libc::ENETUNREACH), false, true),
            ErrorCode::BG_E_NETWORK_DISCONNECTED
        );
        assert_eq!(
            transport_code(Some(libc::ECONNREFUSED), false, true),
            ErrorCode::BG_E_CONNECT_FAILURE
        );
        assert_eq!(transport_code(None, true, false), ErrorCode::E_TIMEOUT);
        assert_eq!(
            transport_code(None, false, false),
            ErrorCode::BG_E_CONNECTION_CLOSED
        );
    }
}
