//! HTTP(S) downloads with `reqwest`: ranges, validators, redirects by BITS's policy, proxies,
//! Basic credentials on challenge.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, ETAG, HeaderMap, IF_RANGE,
    LAST_MODIFIED, LOCATION, RANGE, RETRY_AFTER,
};
use url::Url;

use super::checkpoint::Checkpointer;
use super::segments::{self, Segment};
use super::{Failure, Fetched, FileCx, Run};
use crate::error::{ErrorCode, ErrorContext, Status};
use crate::model::{
    BasicCredentials, Credentials, JobFile, JobProperties, ProxySettings, RedirectPolicy,
    Validators,
};

/// Timeouts and identity of the HTTP client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    pub connect_timeout: Duration,
    /// A body that delivers nothing for this long is abandoned (a transient error). Measured per
    /// chunk, so that throttling, which only delays reads, never trips it.
    pub chunk_timeout: Duration,
    /// A wait for bandwidth this long (a pause, a very low cap) ends the response; the rest is
    /// requested again with a range, because servers drop connections left unread (nginx's
    /// `send_timeout` is 60 s).
    pub throttle_reconnect: Duration,
    pub user_agent: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(30),
            chunk_timeout: Duration::from_secs(60),
            throttle_reconnect: Duration::from_secs(20),
            user_agent: format!("ebb/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ClientKey {
    proxy: ProxySettings,
    proxy_credentials: Option<BasicCredentials>,
    insecure: bool,
}

/// One `reqwest::Client` (and so one connection pool) per distinct proxy/TLS setting, shared by
/// all jobs that use it, so that many small files reuse keep-alive connections.
#[derive(Debug)]
pub(crate) struct HttpClients {
    config: HttpConfig,
    clients: Mutex<HashMap<ClientKey, reqwest::Client>>,
}

impl HttpClients {
    pub(crate) fn new(config: HttpConfig) -> Self {
        crate::install_crypto_provider();
        Self {
            config,
            clients: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn chunk_timeout(&self) -> Duration {
        self.config.chunk_timeout
    }

    pub(crate) fn throttle_reconnect(&self) -> Duration {
        self.config.throttle_reconnect
    }

    fn client(
        &self,
        props: &JobProperties,
        creds: &Credentials,
    ) -> Result<reqwest::Client, Failure> {
        let key = ClientKey {
            proxy: props.proxy.clone(),
            proxy_credentials: creds.proxy.clone(),
            insecure: props.security_flags.ignores_certificate_errors(),
        };
        let mut clients = self.clients.lock().map_err(|_| {
            Failure::new(
                Status::Transient,
                ErrorContext::GeneralTransport,
                ErrorCode::E_FAIL,
                String::new(),
            )
        })?;
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let client = self.build(&key)?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    fn build(&self, key: &ClientKey) -> Result<reqwest::Client, Failure> {
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.config.connect_timeout)
            .user_agent(self.config.user_agent.clone())
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30));
        match &key.proxy {
            ProxySettings::Preconfig | ProxySettings::AutoDetect => {}
            ProxySettings::NoProxy => b = b.no_proxy(),
            ProxySettings::Override {
                proxy_list,
                bypass_list,
            } => {
                for proxy in proxies(proxy_list, bypass_list, key.proxy_credentials.as_ref())? {
                    b = b.proxy(proxy);
                }
            }
        }
        if key.insecure {
            b = b.danger_accept_invalid_certs(true);
        }
        b.build().map_err(|e| {
            Failure::new(
                Status::Permanent,
                ErrorContext::GeneralTransport,
                ErrorCode::BG_E_INVALID_PROXY_INFO,
                format!("(cannot build the HTTP client: {})", error_chain(&e)),
            )
        })
    }
}

/// BITS's proxy list (`[proto=][proto://]server[:port]`) as reqwest proxies.
fn proxies(
    list: &[String],
    bypass: &[String],
    creds: Option<&BasicCredentials>,
) -> Result<Vec<reqwest::Proxy>, Failure> {
    let bypass: Vec<&str> = bypass
        .iter()
        .map(|b| {
            if b == "<local>" {
                "localhost,127.0.0.1,::1"
            } else {
                b.as_str()
            }
        })
        .collect();
    let no_proxy = reqwest::NoProxy::from_string(&bypass.join(","));
    list.iter()
        .map(|entry| {
            let (scheme, target) = match entry.split_once('=') {
                Some((s, t)) => (Some(s.to_ascii_lowercase()), t),
                None => (None, entry.as_str()),
            };
            let target = if target.contains("://") {
                target.to_owned()
            } else {
                format!("http://{target}")
            };
            let proxy = match scheme.as_deref() {
                Some("http") => reqwest::Proxy::http(&target),
                Some("https") => reqwest::Proxy::https(&target),
                _ => reqwest::Proxy::all(&target),
            }
            .map_err(|e| {
                Failure::new(
                    Status::Permanent,
                    ErrorContext::GeneralTransport,
                    ErrorCode::BG_E_INVALID_PROXY_INFO,
                    format!("(proxy {entry:?}: {e})"),
                )
            })?;
            let proxy = match creds {
                Some(c) => proxy.basic_auth(&c.user_name, &c.password),
                None => proxy,
            };
            Ok(proxy.no_proxy(no_proxy.clone()))
        })
        .collect()
}

/// The pieces of a `Content-Range: bytes a-b/total` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ContentRange {
    start: u64,
    end_exclusive: u64,
    total: Option<u64>,
}

fn parse_content_range(headers: &HeaderMap) -> Option<ContentRange> {
    let text = headers.get(CONTENT_RANGE)?.to_str().ok()?.trim();
    let rest = text.strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    let (start, last): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    (last >= start && total.is_none_or(|t| last < t)).then_some(ContentRange {
        start,
        end_exclusive: last + 1,
        total,
    })
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn is_identity(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim().is_empty() || v.trim().eq_ignore_ascii_case("identity"))
}

/// Validators usable with `If-Range`: only a strong ETag, else Last-Modified.
fn validators_of(headers: &HeaderMap) -> Validators {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    Validators {
        etag: text(ETAG).filter(|e| !e.starts_with("W/")),
        last_modified: text(LAST_MODIFIED),
    }
}

/// Did the server hand us a different representation than the one we have bytes of?
fn changed(old: &Validators, new: &Validators) -> bool {
    match (&old.etag, &new.etag) {
        (Some(a), Some(b)) => a != b,
        _ => match (&old.last_modified, &new.last_modified) {
            (Some(a), Some(b)) => a != b,
            _ => false,
        },
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
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

fn is_certificate_error(e: &reqwest::Error) -> bool {
    chain(e).into_iter().any(|err| {
        err.downcast_ref::<rustls::Error>()
            .is_some_and(|tls| matches!(tls, rustls::Error::InvalidCertificate(_)))
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
fn transport_failure(url: &Url, e: &reqwest::Error) -> Failure {
    let detail = format!("({url}: {})", error_chain(e));
    if is_certificate_error(e) {
        return Failure::new(
            Status::Permanent,
            ErrorContext::GeneralTransport,
            ErrorCode::E_ACCESSDENIED,
            detail,
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
fn http_failure(status: u16, headers: &HeaderMap, url: &Url) -> Failure {
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

fn parse_retry_after(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(text).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

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
            r = req.send() => r.map_err(|e| transport_failure(&url, &e))?,
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
                // Credentials go to another origin only when it asks for them.
                use_auth &= to.origin() == url.origin();
                url = to;
                hops += 1;
                tracing::debug!(%url, "following redirect");
            }
            StatusCode::UNAUTHORIZED if !use_auth && cx.credentials.server.is_some() => {
                use_auth = true;
            }
            StatusCode::OK => {
                let new = validators_of(&headers);
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
                let new = validators_of(&headers);
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
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(reqwest::header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn content_range_parsing() {
        let h = headers(&[(CONTENT_RANGE, "bytes 100-199/1000")]);
        assert_eq!(
            parse_content_range(&h),
            Some(ContentRange {
                start: 100,
                end_exclusive: 200,
                total: Some(1000)
            })
        );
        assert!(parse_content_range(&headers(&[(CONTENT_RANGE, "bytes 5-4/10")])).is_none());
        assert!(parse_content_range(&headers(&[(CONTENT_RANGE, "bytes 0-10/10")])).is_none());
        assert!(parse_content_range(&headers(&[(CONTENT_RANGE, "bytes=0-1/10")])).is_none());
        assert_eq!(
            parse_content_range(&headers(&[(CONTENT_RANGE, "bytes 0-1/*")]))
                .unwrap()
                .total,
            None
        );
    }

    #[test]
    fn weak_etags_are_not_validators() {
        let v = validators_of(&headers(&[
            (ETAG, "W/\"x\""),
            (LAST_MODIFIED, "Tue, 24 Nov 2026 00:00:00 GMT"),
        ]));
        assert_eq!(v.etag, None);
        assert_eq!(v.if_range(), Some("Tue, 24 Nov 2026 00:00:00 GMT"));
    }

    #[test]
    fn status_classification() {
        let url = Url::parse("http://127.0.0.1/x").unwrap();
        let h = headers(&[(RETRY_AFTER, "7")]);
        let f = http_failure(503, &h, &url);
        assert_eq!(f.status, Status::Transient);
        assert_eq!(f.retry_after, Some(Duration::from_secs(7)));
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
