//! HTTP(S) downloads with `reqwest`: ranges, validators, redirects by BITS's policy, proxies,
//! Basic credentials on challenge.

use reqwest::StatusCode;
use reqwest::header::{ACCEPT_ENCODING, HeaderMap, IF_RANGE, LOCATION, RANGE};
use url::Url;

use super::checkpoint::Checkpointer;
use super::segments::{self, Segment};
use super::{Failure, Fetched, FileCx, Run};
use crate::error::{ErrorCode, ErrorContext, Status};
use crate::model::{JobFile, JobProperties, RedirectPolicy, Validators};
use failure::{certificate_error, error_chain, http_failure, transport_failure};
use headers::{changed, content_length, is_identity, parse_content_range, validators_of};

mod client;
mod failure;
mod headers;

pub(crate) use client::HttpClients;
pub use client::HttpConfig;

fn redirect_target(
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

/// The `Range` value: open-ended for a whole file (its end is the file's end anyway), closed
/// for a byte range of the file.
fn range_header(seg: Segment, whole: bool) -> String {
    match seg.end {
        Some(end) if !whole => format!("bytes={}-{}", seg.start, end - 1),
        _ => format!("bytes={}-", seg.start),
    }
}

fn protocol_failure(status: Status, code: ErrorCode, detail: String) -> Failure {
    Failure::new(status, ErrorContext::RemoteFile, code, detail)
}

/// How many times one run may start a file over before calling the server broken.
const MAX_RESTARTS: u8 = 3;

pub(super) async fn fetch(
    cx: &FileCx<'_>,
    file: &mut JobFile,
    url: Url,
    ckpt: &mut Checkpointer,
) -> Result<Fetched, Failure> {
    let mut run = Run::new(cx, file)?;
    let result = fetch_inner(cx, &mut run, file, url, ckpt).await;
    run.finish(cx, file, ckpt, result).await
}

async fn fetch_inner(
    cx: &FileCx<'_>,
    run: &mut Run,
    file: &mut JobFile,
    original: Url,
    ckpt: &mut Checkpointer,
) -> Result<Fetched, Failure> {
    let client = cx.clients.client(cx.properties, cx.credentials)?;
    let whole = file.ranges.is_empty();
    let mut url = original.clone();
    let (mut hops, mut restarts) = (0u8, 0u8);
    let (mut use_auth, mut trust_ranges) = (false, true);
    let mut remote_size: Option<u64> = None;
    let mut crl_rounds = 0u8;
    // Server credentials answer a challenge (as in BITS), and only from the origin the job
    // names (or its own host upgraded to HTTPS), unless the job allows other origins: a
    // redirect must not hand them to a stranger.
    let may_authenticate =
        |to: &Url| to.origin() == original.origin() || cx.properties.credentials_across_origins;
    loop {
        if cx.stop.is_cancelled() {
            return Ok(Fetched::Stopped);
        }
        cx.throttle.note_server(&url);
        let Some(seg) = segments::next(file, remote_size) else {
            if cx.properties.security_flags.redirect_policy() == RedirectPolicy::AllowReport
                && url != original
            {
                file.remote_url = url.to_string();
            }
            return Ok(Fetched::Completed);
        };
        if restarts > MAX_RESTARTS {
            return Err(protocol_failure(
                Status::Transient,
                ErrorCode::BG_E_INVALID_SERVER_RESPONSE,
                format!(
                    "({url}: the file changed or the server answered inconsistently {restarts} times)"
                ),
            ));
        }
        // Resuming needs a validator to prove the bytes we have are of the same file.
        if whole && seg.start > 0 && (!trust_ranges || file.validators.if_range().is_none()) {
            run.restart(cx, file)?;
            restarts += 1;
            continue;
        }
        let ranged = !whole || seg.start > 0;
        let sent_if_range =
            ranged && file.bytes_transferred > 0 && file.validators.if_range().is_some();
        let mut req = client.get(url.clone()).header(ACCEPT_ENCODING, "identity");
        for h in &cx.properties.custom_headers {
            req = req.header(h.name.as_str(), h.value.as_str());
        }
        if ranged {
            req = req.header(RANGE, range_header(seg, whole));
            if let Some(v) = file.validators.if_range().filter(|_| sent_if_range) {
                req = req.header(IF_RANGE, v);
            }
        }
        if use_auth && let Some(c) = &cx.credentials.server {
            req = req.basic_auth(&c.user_name, Some(&c.password));
        }
        tracing::debug!(%url, range = ranged.then(|| range_header(seg, whole)), "request");
        let response = tokio::select! {
            biased;
            () = cx.stop.cancelled() => return Ok(Fetched::Stopped),
            r = req.send() => r,
        };
        let response = match response {
            Ok(r) => r,
            // With revocation checks on, a handshake names the CRLs it lacks (or another job of
            // this engine is fetching them): fetch, and connect again.
            Err(e)
                if crl_rounds < 2
                    && certificate_error(&e)
                        == Some(rustls::CertificateError::UnknownRevocationStatus) =>
            {
                cx.clients.fetch_crls(&client, cx.stop).await?;
                crl_rounds += 1;
                continue;
            }
            Err(e) => return Err(transport_failure(&url, &e)),
        };
        let status = response.status();
        let headers = response.headers().clone();
        match status {
            StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT => {
                let to = redirect_target(status.as_u16(), &headers, &url, cx.properties, hops)?;
                use_auth &= may_authenticate(&to);
                url = to;
                hops += 1;
                tracing::debug!(%url, "following redirect");
            }
            StatusCode::UNAUTHORIZED
                if !use_auth && cx.credentials.server.is_some() && may_authenticate(&url) =>
            {
                use_auth = true;
            }
            StatusCode::OK => {
                let new = validators_of(&headers, is_identity(&headers));
                if !whole {
                    if sent_if_range {
                        // If-Range failed: the remote file changed under our ranges.
                        tracing::info!(%url, "remote file changed; restarting its ranges");
                        run.restart(cx, file)?;
                        restarts += 1;
                        continue;
                    }
                    return Err(protocol_failure(
                        Status::Permanent,
                        ErrorCode::BG_E_INSUFFICIENT_RANGE_SUPPORT,
                        format!("({url} answered a range request with the whole file)"),
                    ));
                }
                if file.bytes_transferred > 0 {
                    tracing::info!(%url, had = file.bytes_transferred, "server sent the whole file; restarting it");
                    run.restart(cx, file)?;
                    restarts += 1;
                }
                file.validators = new;
                file.bytes_total = content_length(&headers);
                run.begin_hash(file);
                run.announce(cx);
                let expected = file.bytes_total;
                match run.stream(cx, response, file, ckpt, expected).await? {
                    Streamed::Stopped => return Ok(Fetched::Stopped),
                    Streamed::Reconnect => continue,
                    Streamed::Done => {}
                }
                if file.bytes_total.is_none() {
                    file.bytes_total = Some(file.bytes_transferred);
                }
            }
            StatusCode::PARTIAL_CONTENT => {
                let new = validators_of(&headers, false);
                let cr = parse_content_range(&headers);
                let length = content_length(&headers);
                let honest = cr.is_some_and(|cr| {
                    cr.start == seg.start
                        && seg.end.is_none_or(|end| cr.end_exclusive <= end)
                        && length.is_none_or(|l| l == cr.end_exclusive - cr.start)
                        && (!whole || file.bytes_total.is_none() || cr.total == file.bytes_total)
                }) && is_identity(&headers);
                let Some(cr) = cr.filter(|_| honest) else {
                    if !whole {
                        return Err(protocol_failure(
                            Status::Permanent,
                            ErrorCode::BG_E_INVALID_SERVER_RESPONSE,
                            format!(
                                "({url}: Content-Range or encoding of a 206 does not match the request {})",
                                range_header(seg, whole)
                            ),
                        ));
                    }
                    tracing::warn!(%url, range = %range_header(seg, whole), "server's 206 does not match the request; fetching the whole file");
                    trust_ranges = false;
                    run.restart(cx, file)?;
                    restarts += 1;
                    continue;
                };
                if file.bytes_transferred > 0 && changed(&file.validators, &new) {
                    tracing::info!(%url, "remote file changed; restarting it");
                    run.restart(cx, file)?;
                    restarts += 1;
                    continue;
                }
                if file.validators == Validators::default() {
                    file.validators = new;
                } else if file.validators.sha256.is_none() {
                    file.validators.sha256 = new.sha256;
                }
                run.begin_hash(file);
                if whole {
                    file.bytes_total = file.bytes_total.or(cr.total);
                } else if remote_size.is_none()
                    && let Some(size) = cr.total
                {
                    if let Some(why) = segments::out_of_bounds(file, size) {
                        return Err(protocol_failure(
                            Status::Permanent,
                            ErrorCode::BG_E_INVALID_RANGE,
                            why,
                        ));
                    }
                    remote_size = Some(size);
                    file.bytes_total = segments::total(file, remote_size);
                }
                run.announce(cx);
                match run
                    .stream(cx, response, file, ckpt, Some(cr.end_exclusive - cr.start))
                    .await?
                {
                    Streamed::Stopped => return Ok(Fetched::Stopped),
                    Streamed::Reconnect => continue,
                    Streamed::Done => {}
                }
                if whole && seg.end.is_none() && file.bytes_total.is_none() {
                    // `bytes N-M/*`: the server sent the rest of a file of unknown length.
                    file.bytes_total = Some(file.bytes_transferred);
                }
            }
            StatusCode::RANGE_NOT_SATISFIABLE if whole => {
                tracing::info!(%url, "416 for our range; restarting the file");
                run.restart(cx, file)?;
                restarts += 1;
            }
            StatusCode::RANGE_NOT_SATISFIABLE => {
                return Err(protocol_failure(
                    Status::Permanent,
                    ErrorCode::BG_E_INVALID_RANGE,
                    format!("({url} cannot serve {})", range_header(seg, whole)),
                ));
            }
            s if s.is_success() => {
                return Err(protocol_failure(
                    Status::Permanent,
                    ErrorCode::BG_E_INVALID_SERVER_RESPONSE,
                    format!("({url} answered {s})"),
                ));
            }
            s => return Err(http_failure(s.as_u16(), &headers, &url)),
        }
    }
}

/// How a body ended without error.
enum Streamed {
    Done,
    Stopped,
    /// Throttled so long that the connection is not worth trusting: request the rest anew.
    Reconnect,
}

impl Run {
    /// Copy a response body into the temporary file.
    async fn stream(
        &mut self,
        cx: &FileCx<'_>,
        mut response: reqwest::Response,
        file: &mut JobFile,
        ckpt: &mut Checkpointer,
        expected: Option<u64>,
    ) -> Result<Streamed, Failure> {
        let url = response.url().clone();
        let mut got = 0u64;
        loop {
            let chunk = tokio::select! {
                biased;
                () = cx.stop.cancelled() => return Ok(Streamed::Stopped),
                c = tokio::time::timeout(cx.clients.chunk_timeout(), response.chunk()) => c,
            };
            let bytes = match chunk {
                Err(_) => {
                    return Err(Failure::new(
                        Status::Transient,
                        ErrorContext::GeneralTransport,
                        ErrorCode::E_TIMEOUT,
                        format!("({url}: no data for {:?})", cx.clients.chunk_timeout()),
                    ));
                }
                Ok(Err(e)) => {
                    return Err(Failure::new(
                        Status::Transient,
                        ErrorContext::GeneralTransport,
                        ErrorCode::BG_E_CONNECTION_CLOSED,
                        format!("({url}: {})", error_chain(&e)),
                    ));
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(bytes))) => bytes,
            };
            cx.throttle.received(bytes.len());
            // Never write past what the server promised.
            let room = expected.map_or(bytes.len() as u64, |e| e.saturating_sub(got));
            let take = (bytes.len() as u64).min(room) as usize;
            // Bandwidth limits admit bytes piece by piece, so that a large read is not a burst.
            let mut rest = &bytes[..take];
            while !rest.is_empty() {
                let (piece, tail) = rest.split_at(rest.len().min(cx.throttle.piece()));
                let asked = tokio::time::Instant::now();
                tokio::select! {
                    biased;
                    () = cx.stop.cancelled() => return Ok(Streamed::Stopped),
                    () = cx.throttle.admit(piece.len()) => {}
                }
                self.write(cx, file, ckpt, piece).await?;
                got += piece.len() as u64;
                rest = tail;
                if asked.elapsed() >= cx.clients.throttle_reconnect() {
                    // The connection sat unread while paused: ask again from here rather than
                    // wait for the server to drop it and fail.
                    tracing::debug!(%url, waited = ?asked.elapsed(), "reconnecting after a long throttle");
                    return Ok(Streamed::Reconnect);
                }
            }
        }
        if let Some(e) = expected.filter(|&e| got < e) {
            return Err(Failure::new(
                Status::Transient,
                ErrorContext::GeneralTransport,
                ErrorCode::BG_E_CONNECTION_CLOSED,
                format!("({url}: body ended after {got} of {e} bytes)"),
            ));
        }
        Ok(Streamed::Done)
    }
}

/// A header map for unit tests of this module and its children.
#[cfg(test)]
pub(super) fn test_headers(pairs: &[(reqwest::header::HeaderName, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        if let Ok(v) = reqwest::header::HeaderValue::from_str(v) {
            h.insert(k.clone(), v);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_headers as headers;

    #[test]
    fn https_to_http_redirect_needs_the_flag() {
        let from = Url::parse("https://a.example/x").unwrap();
        let h = headers(&[(LOCATION, "http://b.example/y")]);
        let mut props = JobProperties::default();
        assert!(redirect_target(302, &h, &from, &props, 0).is_err());
        props.security_flags = crate::model::SecurityFlags::new(0x800).unwrap();
        assert_eq!(
            redirect_target(302, &h, &from, &props, 0).unwrap().as_str(),
            "http://b.example/y"
        );
        let rel = headers(&[(LOCATION, "/z")]);
        assert_eq!(
            redirect_target(301, &rel, &from, &props, 0)
                .unwrap()
                .as_str(),
            "https://a.example/z"
        );
        assert!(redirect_target(301, &rel, &from, &props, 10).is_err());
    }
}
