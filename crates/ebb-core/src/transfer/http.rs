//! HTTP(S) downloads with `reqwest`: ranges, validators, redirects by BITS's policy, proxies,
//! Basic credentials on challenge. The client pool is `client`, what a response means is
//! `verdict` (pure), one file over several connections is `split`, and the fetch loop, acting
//! on verdicts, is here.

use reqwest::header::{ACCEPT_ENCODING, IF_RANGE, RANGE};
use url::Url;

use super::checkpoint::Checkpointer;
use super::segments;
use super::{Attempt, Failure, Fetched, FileCx};
use crate::error::{ErrorCode, ErrorContext, Status};
use crate::model::{JobFile, RedirectPolicy, Validators};
use failure::http_failure;
pub(super) use failure::{certificate_error, error_chain, transport_failure};
use verdict::{Asked, Verdict, classify, range_header};

mod client;
mod failure;
mod headers;
mod split;
mod verdict;

pub(super) use split::high_water;

pub(crate) use client::HttpClients;
pub use client::HttpConfig;

/// How many times one run may start a file over before calling the server broken.
const MAX_RESTARTS: u8 = 3;

pub(super) async fn fetch(
    cx: &FileCx<'_>,
    file: &mut JobFile,
    url: Url,
    ckpt: &Checkpointer,
) -> Result<Fetched, Failure> {
    let mut attempt = Attempt::new(cx, file, ckpt).await?;
    let result = fetch_inner(cx, &mut attempt, file, url, ckpt).await;
    attempt.finish(cx, file, ckpt, result).await
}

/// Where one file's fetch stands between requests.
#[derive(Debug)]
struct Progress {
    client: reqwest::Client,
    url: Url,
    hops: u8,
    restarts: u8,
    /// Send the job's server credentials (a challenge asked for them).
    use_auth: bool,
    /// The server's 206s can be trusted to resume a whole file.
    trust_ranges: bool,
    remote_size: Option<u64>,
    crl_rounds: u8,
}

async fn fetch_inner(
    cx: &FileCx<'_>,
    attempt: &mut Attempt,
    file: &mut JobFile,
    original: Url,
    ckpt: &Checkpointer,
) -> Result<Fetched, Failure> {
    let client = cx.clients.client(cx.properties, cx.credentials)?;
    let whole = file.ranges.is_empty();
    let mut at = Progress {
        client: client.clone(),
        url: original.clone(),
        hops: 0,
        restarts: 0,
        use_auth: false,
        trust_ranges: true,
        remote_size: None,
        crl_rounds: 0,
    };
    // Server credentials answer a challenge (as in BITS), and only from the origin the job
    // names (or its own host upgraded to HTTPS), unless the job allows other origins: a
    // redirect must not hand them to a stranger.
    let may_authenticate =
        |to: &Url| to.origin() == original.origin() || cx.properties.credentials_across_origins;
    loop {
        if cx.stop.is_cancelled() {
            return Ok(Fetched::Stopped);
        }
        cx.throttle.note_server(&at.url);
        if !file.splits.is_empty() {
            match run_splits(cx, attempt, file, ckpt, &mut at, None).await? {
                Streamed::Stopped => return Ok(Fetched::Stopped),
                _ => continue,
            }
        }
        let Some(seg) = next_segment(cx, file, &at, &original)? else {
            return Ok(Fetched::Completed);
        };
        // Resuming needs a validator to prove the bytes we have are of the same file.
        if whole && seg.start > 0 && (!at.trust_ranges || file.validators.if_range().is_none()) {
            attempt.restart(cx, file)?;
            at.restarts += 1;
            continue;
        }
        let sent_if_range = (!whole || seg.start > 0)
            && file.bytes_transferred > 0
            && file.validators.if_range().is_some();
        let req = request(cx, &client, &at, file, seg);
        let Some(response) = send(cx, &client, req, &mut at).await? else {
            continue;
        };
        let asked = Asked {
            url: &at.url,
            seg,
            whole,
            sent_if_range,
            hops: at.hops,
            may_authenticate: !at.use_auth
                && cx.credentials.server.is_some()
                && may_authenticate(&at.url),
            remote_size: at.remote_size,
        };
        let verdict = classify(
            response.status(),
            response.headers(),
            &asked,
            file,
            cx.properties,
        );
        match verdict {
            Verdict::Redirect(to) => {
                at.use_auth &= may_authenticate(&to);
                at.url = to;
                at.hops += 1;
                tracing::debug!(url = %at.url, "following redirect");
            }
            Verdict::Authenticate => at.use_auth = true,
            Verdict::Restart { distrust_ranges } => {
                at.trust_ranges &= !distrust_ranges;
                attempt.restart(cx, file)?;
                at.restarts += 1;
            }
            Verdict::Fail(failure) => return Err(failure),
            body => match read_body(cx, attempt, file, ckpt, response, body, &mut at).await? {
                Streamed::Stopped => return Ok(Fetched::Stopped),
                Streamed::Reconnect | Streamed::Done | Streamed::Split(..) => {}
            },
        }
    }
}

/// The next bytes to ask for, or `None` once the file is complete (then a redirect the job's
/// policy reports becomes its remote name). Fails once the server made the file start over
/// too often.
fn next_segment(
    cx: &FileCx<'_>,
    file: &mut JobFile,
    at: &Progress,
    original: &Url,
) -> Result<Option<segments::Segment>, Failure> {
    let Some(seg) = segments::next(file, at.remote_size) else {
        if cx.properties.security_flags.redirect_policy() == RedirectPolicy::AllowReport
            && at.url != *original
        {
            file.remote_url = at.url.to_string();
        }
        return Ok(None);
    };
    if at.restarts > MAX_RESTARTS {
        return Err(Failure::new(
            Status::Transient,
            ErrorContext::RemoteFile,
            ErrorCode::BG_E_INVALID_SERVER_RESPONSE,
            format!(
                "({}: the file changed or the server answered inconsistently {} times)",
                at.url, at.restarts
            ),
        ));
    }
    Ok(Some(seg))
}

/// The GET for `seg` of `file`: identity encoding, the job's headers, the range with the
/// validator that proves the bytes kept are of the same file, and credentials once challenged.
fn request(
    cx: &FileCx<'_>,
    client: &reqwest::Client,
    at: &Progress,
    file: &JobFile,
    seg: segments::Segment,
) -> reqwest::RequestBuilder {
    let whole = file.ranges.is_empty();
    let ranged = !whole || seg.start > 0;
    let mut req = client
        .get(at.url.clone())
        .header(ACCEPT_ENCODING, "identity");
    for h in &cx.properties.custom_headers {
        req = req.header(h.name.as_str(), h.value.as_str());
    }
    if ranged {
        req = req.header(RANGE, range_header(seg, whole));
        if let Some(v) = file
            .validators
            .if_range()
            .filter(|_| file.bytes_transferred > 0)
        {
            req = req.header(IF_RANGE, v);
        }
    }
    if at.use_auth
        && let Some(c) = &cx.credentials.server
    {
        req = req.basic_auth(&c.user_name, Some(&c.password));
    }
    tracing::debug!(url = %at.url, range = ranged.then(|| range_header(seg, whole)), "request");
    req
}

/// Send a request; `None` means "ask again": with revocation checks on, a handshake names the
/// CRLs it lacks (or another job of this engine is fetching them), which are fetched first.
async fn send(
    cx: &FileCx<'_>,
    client: &reqwest::Client,
    req: reqwest::RequestBuilder,
    at: &mut Progress,
) -> Result<Option<reqwest::Response>, Failure> {
    let response = tokio::select! {
        biased;
        () = cx.stop.cancelled() => return Ok(None),
        r = req.send() => r,
    };
    match response {
        Ok(r) => Ok(Some(r)),
        Err(e)
            if at.crl_rounds < 2
                && certificate_error(&e)
                    == Some(rustls::CertificateError::UnknownRevocationStatus) =>
        {
            cx.clients.fetch_crls(client, cx.stop).await?;
            at.crl_rounds += 1;
            Ok(None)
        }
        Err(e) => Err(transport_failure(&at.url, &e)),
    }
}

/// Take a body the verdict accepted into the file: its validators and size, then its bytes.
async fn read_body(
    cx: &FileCx<'_>,
    attempt: &mut Attempt,
    file: &mut JobFile,
    ckpt: &Checkpointer,
    response: reqwest::Response,
    verdict: Verdict,
    at: &mut Progress,
) -> Result<Streamed, Failure> {
    let whole = file.ranges.is_empty();
    let (expected, to_eof) = match verdict {
        Verdict::Whole {
            validators,
            length,
            restart_first,
        } => {
            if restart_first {
                attempt.restart(cx, file)?;
                at.restarts += 1;
            }
            file.validators = validators;
            file.bytes_total = length;
            (length, true)
        }
        Verdict::Range {
            validators,
            range,
            remote_size,
        } => {
            if file.validators == Validators::default() {
                file.validators = validators;
            } else if file.validators.sha256.is_none() {
                file.validators.sha256 = validators.sha256;
            }
            if whole {
                file.bytes_total = file.bytes_total.or(range.total);
            } else if let Some(size) = remote_size {
                at.remote_size = Some(size);
                file.bytes_total = segments::total(file, at.remote_size);
            }
            // `bytes N-M/*` for the rest of a whole file: the file ends with this body.
            let to_eof = whole && range.total.is_none();
            (Some(range.end_exclusive - range.start), to_eof)
        }
        _ => return Ok(Streamed::Done),
    };
    attempt.begin_hash(file);
    attempt.announce(cx);
    let plan = split::Plan::of(cx).filter(|_| split::splittable(file, response.headers()));
    let streamed = match attempt
        .stream(cx, response, file, ckpt, expected, plan)
        .await?
    {
        Streamed::Split(response, n) => {
            split::cut(file, n);
            attempt.split(file);
            run_splits(cx, attempt, file, ckpt, at, Some(response)).await?
        }
        other => other,
    };
    if matches!(streamed, Streamed::Done) && to_eof && file.bytes_total.is_none() {
        file.bytes_total = Some(file.bytes_transferred);
    }
    Ok(streamed)
}

/// Go on with a split file over its connections (`first`: the response split 0 reads on).
/// `Done` once every split is: the file is whole, and fetched like any other from here.
async fn run_splits(
    cx: &FileCx<'_>,
    attempt: &mut Attempt,
    file: &mut JobFile,
    ckpt: &Checkpointer,
    at: &mut Progress,
    first: Option<reqwest::Response>,
) -> Result<Streamed, Failure> {
    match split::run(cx, attempt, file, ckpt, at, first).await? {
        split::SplitEnd::Done => {
            // Every split ended at its end, and the file holds every byte. Otherwise (which
            // would be a bug) the file is fetched again rather than finished with a hole.
            let whole = file.splits.iter().all(|s| s.next >= s.end)
                && file.bytes_total == Some(file.bytes_transferred);
            file.splits.clear();
            if !whole {
                tracing::error!(bytes = file.bytes_transferred, total = ?file.bytes_total, "the splits ended short of the file; fetching it again");
                attempt.restart(cx, file)?;
                at.restarts += 1;
            }
            Ok(Streamed::Done)
        }
        split::SplitEnd::Stopped => Ok(Streamed::Stopped),
        split::SplitEnd::Restart => {
            attempt.restart(cx, file)?;
            at.restarts += 1;
            Ok(Streamed::Done)
        }
    }
}

/// How a body ended without error.
enum Streamed {
    Done,
    Stopped,
    /// Throttled so long that the connection is not worth trusting: request the rest anew.
    Reconnect,
    /// One connection is too slow for the rest of the file: split it over this many, the
    /// response going on as the first.
    Split(reqwest::Response, usize),
}

impl Attempt {
    /// Copy a response body into the temporary file.
    async fn stream(
        &mut self,
        cx: &FileCx<'_>,
        mut response: reqwest::Response,
        file: &mut JobFile,
        ckpt: &Checkpointer,
        expected: Option<u64>,
        plan: Option<split::Plan>,
    ) -> Result<Streamed, Failure> {
        let url = response.url().clone();
        let began = std::time::Instant::now();
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
            if let (Some(plan), Some(e)) = (plan, expected)
                && plan.split_now(began, got, e - got, || cx.throttle.one_connection_short())
            {
                return Ok(Streamed::Split(response, plan.n));
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
pub(super) fn test_headers(
    pairs: &[(reqwest::header::HeaderName, &str)],
) -> reqwest::header::HeaderMap {
    let mut h = reqwest::header::HeaderMap::new();
    for (k, v) in pairs {
        if let Ok(v) = reqwest::header::HeaderValue::from_str(v) {
            h.insert(k.clone(), v);
        }
    }
    h
}
