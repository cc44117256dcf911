//! One large file over several connections at once: the high-performance mode of a foreground
//! job (`connections`), for a long or lossy path where one TCP stream cannot fill the link.
//!
//! The file is cut into splits (`JobFile::splits`), each fetched by its own ranged request
//! (with `If-Range`) into its place in the one temporary file. Each split's progress is
//! checkpointed with the file, so that after a stop or a crash every split goes on from its own
//! durable offset. A connection that finishes its split takes the back half of the largest one
//! left, so that they all end together. A background job splits only when the idle-capacity
//! control finds one connection short of what the idle link offers (a lossy path): its rate
//! limit holds all of the job's connections together, so they stay as polite as one.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use reqwest::header::{ACCEPT_ENCODING, IF_RANGE, RANGE};
use url::Url;

use super::super::segments::Segment;
use super::super::{Attempt, Checkpointer, Failure, FileCx};
use super::verdict::{Asked, Verdict, classify};
use super::{Progress, error_chain, transport_failure};
use crate::error::{ErrorCode, ErrorContext, Status};
use crate::model::{JobFile, Priority, Split};

/// No file is cut into splits smaller than this: below it, a request's round trips cost more
/// than the extra connection brings.
const MIN_SPLIT: u64 = 4 << 20;
/// A free connection takes half of a split that has at least twice this left: near the end,
/// every connection keeps working until the last megabytes.
const MIN_STEAL: u64 = 1 << 20;
/// The connections of an automatic split (`connections` = 0 on a foreground job).
const AUTO: usize = 4;
/// The connections of a background job's split: one loss-limited TCP stream takes a few
/// Mbit/s (1 % loss, 20 ms: 5.6-7.1), so filling an idle link of tens of Mbit/s takes this
/// many (8 moved 84-89 % of 50 Mbit/s once split, short of it whenever a few stalled at
/// once; 16 move 94-95 %).
const IDLE: usize = 16;
/// A background split's connections open this far apart: each new one's first flight (ten
/// segments, before its window is clamped) then lands alone, not sixteen at once into the
/// queue.
const IDLE_STAGGER: Duration = Duration::from_millis(50);
/// An automatic split is considered once one connection has run this long...
pub(super) const PROBE: Duration = Duration::from_millis(500);
/// ...and made when that connection alone would need longer than this for the rest.
const WORTH: Duration = Duration::from_secs(2);
/// How often one run asks for a split again after its connection failed.
const MAX_RETRIES: u8 = 3;

/// How a job's file may be split: into at most `n` connections, at once or (automatic) only
/// when one connection proves slow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Plan {
    pub n: usize,
    pub automatic: bool,
    /// A background job's: split when the idle-capacity control says one connection falls
    /// short of the idle link.
    pub idle: bool,
}

impl Plan {
    /// The job's plan: a foreground job's as its `connections` say; a background job's only
    /// for the idle link, and not at all with `connections` = 1.
    pub(super) fn of(cx: &FileCx<'_>) -> Option<Self> {
        let plan = |n, automatic, idle| Some(Self { n, automatic, idle });
        match cx.properties.connections {
            1 => None,
            _ if cx.properties.priority != Priority::Foreground => plan(IDLE, true, true),
            0 => plan(AUTO, true, false),
            n => plan(usize::from(n), false, false),
        }
    }

    /// Whether to split now, `got` bytes into a body that began at `began`, with `left` bytes
    /// of the file to come; `short` asks (and takes the answer) whether the idle-capacity
    /// control finds one connection short of the idle link.
    pub(super) fn split_now(
        self,
        began: Instant,
        got: u64,
        left: u64,
        short: impl FnOnce() -> bool,
    ) -> bool {
        if left < 2 * MIN_SPLIT {
            return false;
        }
        if self.idle {
            return short();
        }
        if !self.automatic {
            return true;
        }
        let spent = began.elapsed();
        if spent < PROBE || got == 0 {
            return false;
        }
        // The rest at this connection's rate so far.
        let rest = spent.mul_f64(left as f64 / got as f64);
        rest > WORTH
    }
}

/// Whether a file can be split: a whole file of known size, with a validator to send in
/// `If-Range` and a server that takes byte ranges.
pub(super) fn splittable(file: &JobFile, headers: &reqwest::header::HeaderMap) -> bool {
    let ranges = headers
        .get(reqwest::header::ACCEPT_RANGES)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"bytes"));
    file.ranges.is_empty()
        && file.bytes_total.is_some()
        && file.validators.if_range().is_some()
        && (ranges || file.bytes_transferred > 0)
}

/// Cut the rest of the file, `file.bytes_transferred..total`, into at most `n` splits; the
/// first covers the bytes so far and goes on where the current connection is.
pub(super) fn cut(file: &mut JobFile, n: usize) {
    let Some(total) = file.bytes_total else {
        return;
    };
    let from = file.bytes_transferred;
    let n = usize::try_from((total - from) / MIN_SPLIT).map_or(n, |most| n.min(most));
    if n < 2 {
        return;
    }
    let step = (total - from) / n as u64;
    file.splits = (0..n as u64)
        .map(|i| {
            let start = if i == 0 { 0 } else { from + i * step };
            let next = if i == 0 { from } else { start };
            let end = if i + 1 == n as u64 {
                total
            } else {
                from + (i + 1) * step
            };
            Split { start, next, end }
        })
        .collect();
}

/// The end of the last byte any split has written: the temporary file's durable length.
pub(crate) fn high_water(splits: &[Split]) -> u64 {
    splits.iter().map(|s| s.next).max().unwrap_or(0)
}

/// Take the back half of the split with the most left, for a connection that is free; the
/// index of the new split, if one is worth cutting.
fn steal(splits: &mut Vec<Split>) -> Option<usize> {
    let (i, left) = splits
        .iter()
        .enumerate()
        .map(|(i, s)| (i, s.end - s.next))
        .max_by_key(|&(_, left)| left)?;
    if left < 2 * MIN_STEAL {
        return None;
    }
    let mid = splits[i].next + left / 2;
    let end = std::mem::replace(&mut splits[i].end, mid);
    splits.push(Split {
        start: mid,
        next: mid,
        end,
    });
    Some(splits.len() - 1)
}

/// What one connection did next.
enum Event {
    /// The request for split `i` was answered with its range.
    Opened(usize, reqwest::Response),
    /// Bytes for split `i`.
    Chunk(usize, reqwest::Response, Bytes),
    /// The body of split `i` ended.
    Ended(usize),
    /// The request for split `i` must be made again: at another URL (a redirect), or with the
    /// job's credentials (a challenge).
    Again(usize, Again),
    /// The file changed on the server (or its ranges cannot be trusted): start it over.
    Restart,
    Failed(usize, Failure),
}

/// How a split fetch ended without error.
pub(super) enum SplitEnd {
    Done,
    Stopped,
    /// The file changed on the server: throw the bytes away and fetch it whole.
    Restart,
}

/// The splits' fetch: `first` (if any) is the response that split 0 goes on reading. At most
/// the plan's connections are open at once (one, for a split file whose job now has
/// `connections` = 1); the other splits wait their turn.
pub(super) async fn run(
    cx: &FileCx<'_>,
    attempt: &mut Attempt,
    file: &mut JobFile,
    ckpt: &Checkpointer,
    at: &Progress,
    first: Option<reqwest::Response>,
) -> Result<SplitEnd, Failure> {
    let link = Link {
        client: at.client.clone(),
        url: at.url.clone(),
        use_auth: at.use_auth,
        hops: at.hops,
    };
    let (mut parts, mut waiting) = start(cx, &link, file, first);
    let mut retries = vec![0u8; file.splits.len()];
    loop {
        let event = tokio::select! {
            biased;
            () = cx.stop.cancelled() => return Ok(SplitEnd::Stopped),
            e = parts.next() => e,
        };
        let Some(event) = event else {
            return Ok(SplitEnd::Done);
        };
        let again = match event {
            Event::Opened(i, response) => {
                attempt.announce(cx);
                parts.push(Box::pin(next_chunk(
                    i,
                    response,
                    cx.clients.chunk_timeout(),
                )));
                continue;
            }
            Event::Chunk(i, response, bytes) => {
                if write(cx, attempt, file, ckpt, i, &bytes).await? {
                    parts.push(Box::pin(next_chunk(
                        i,
                        response,
                        cx.clients.chunk_timeout(),
                    )));
                    continue;
                }
                // This split is done: its connection goes to a waiting split, or takes half
                // of the largest one left.
                drop(response);
                let next = waiting.pop_front().or_else(|| steal(&mut file.splits));
                let Some(j) = next else { continue };
                retries.resize(file.splits.len(), 0);
                (j, None)
            }
            Event::Ended(i) | Event::Failed(i, _) if file.splits[i].next >= file.splits[i].end => {
                continue;
            }
            Event::Ended(i) => {
                retry(&mut retries, i, ended_early(&link.url, &file.splits[i]))?;
                (i, None)
            }
            Event::Failed(i, f) => {
                retry(&mut retries, i, f)?;
                (i, None)
            }
            Event::Again(i, to) => (i, Some(to)),
            Event::Restart => return Ok(SplitEnd::Restart),
        };
        parts.push(link.open(cx, file, again.0, again.1));
    }
}

/// The first connections: `first` goes on as split 0's, and the plan's number of unfinished
/// splits are asked for; the others wait their turn.
fn start(
    cx: &FileCx<'_>,
    link: &Link,
    file: &JobFile,
    first: Option<reqwest::Response>,
) -> (FuturesUnordered<BoxFuture<'static, Event>>, VecDeque<usize>) {
    let plan = Plan::of(cx);
    let most = plan.map_or(1, |p| p.n.max(1));
    let parts: FuturesUnordered<BoxFuture<'static, Event>> = FuturesUnordered::new();
    let mut waiting: VecDeque<usize> = (0..file.splits.len())
        .filter(|&i| file.splits[i].next < file.splits[i].end)
        .collect();
    if let Some(response) = first {
        waiting.retain(|&i| i != 0);
        parts.push(Box::pin(next_chunk(
            0,
            response,
            cx.clients.chunk_timeout(),
        )));
    }
    let stagger = if plan.is_some_and(|p| p.idle) {
        IDLE_STAGGER
    } else {
        Duration::ZERO
    };
    let mut after = Duration::ZERO;
    while parts.len() < most
        && let Some(i) = waiting.pop_front()
    {
        let open = link.open(cx, file, i, None);
        if after.is_zero() {
            parts.push(open);
        } else {
            parts.push(Box::pin(async move {
                tokio::time::sleep(after).await;
                open.await
            }));
        }
        after += stagger;
    }
    tracing::debug!(
        splits = file.splits.len(),
        connections = most,
        "fetching the file in splits"
    );
    (parts, waiting)
}

fn retry(retries: &mut [u8], i: usize, f: Failure) -> Result<(), Failure> {
    retries[i] += 1;
    if retries[i] > MAX_RETRIES || f.status == Status::Permanent {
        return Err(f);
    }
    tracing::debug!(split = i, error = %f.error.description, "asking for a split again");
    Ok(())
}

fn ended_early(url: &Url, s: &Split) -> Failure {
    Failure::new(
        Status::Transient,
        ErrorContext::GeneralTransport,
        ErrorCode::BG_E_CONNECTION_CLOSED,
        format!(
            "({url}: a split's body ended at byte {} of {})",
            s.next, s.end
        ),
    )
}

/// Write a chunk of split `i` at its place, through the job's bandwidth limits; whether the
/// split wants more.
async fn write(
    cx: &FileCx<'_>,
    attempt: &mut Attempt,
    file: &mut JobFile,
    ckpt: &Checkpointer,
    i: usize,
    bytes: &[u8],
) -> Result<bool, Failure> {
    cx.throttle.received(bytes.len());
    let s = file.splits[i];
    let take = usize::try_from(s.end - s.next).map_or(bytes.len(), |room| bytes.len().min(room));
    let mut rest = &bytes[..take];
    while !rest.is_empty() {
        let (piece, tail) = rest.split_at(rest.len().min(cx.throttle.piece()));
        cx.throttle.admit(piece.len()).await;
        attempt.write_split(cx, file, ckpt, i, piece).await?;
        rest = tail;
    }
    Ok(file.splits[i].next < file.splits[i].end)
}

/// The next chunk of a split's body.
async fn next_chunk(i: usize, mut response: reqwest::Response, timeout: Duration) -> Event {
    let url = response.url().clone();
    match tokio::time::timeout(timeout, response.chunk()).await {
        Err(_) => Event::Failed(
            i,
            Failure::new(
                Status::Transient,
                ErrorContext::GeneralTransport,
                ErrorCode::E_TIMEOUT,
                format!("({url}: no data for {timeout:?})"),
            ),
        ),
        Ok(Err(e)) => Event::Failed(
            i,
            Failure::new(
                Status::Transient,
                ErrorContext::GeneralTransport,
                ErrorCode::BG_E_CONNECTION_CLOSED,
                format!("({url}: {})", error_chain(&e)),
            ),
        ),
        Ok(Ok(None)) => Event::Ended(i),
        Ok(Ok(Some(bytes))) => Event::Chunk(i, response, bytes),
    }
}

/// How to ask a split again (with the redirects followed so far).
#[derive(Debug)]
enum Again {
    /// At this URL, without credentials.
    At(Url, u8),
    /// At this URL, with the job's server credentials.
    WithCredentials(Url, u8),
}

/// What every split's request shares: the client, and where the first request ended up.
struct Link {
    client: reqwest::Client,
    url: Url,
    use_auth: bool,
    hops: u8,
}

impl Link {
    /// Ask for the rest of split `i`: at the link's URL, or `again` where a redirect or a
    /// challenge said.
    fn open(
        &self,
        cx: &FileCx<'_>,
        file: &JobFile,
        i: usize,
        again: Option<Again>,
    ) -> BoxFuture<'static, Event> {
        let (url, hops, use_auth) = match again {
            None => (self.url.clone(), self.hops, self.use_auth),
            Some(Again::At(url, hops)) => (url, hops, false),
            Some(Again::WithCredentials(url, hops)) => (url, hops, true),
        };
        let s = file.splits[i];
        let seg = Segment {
            start: s.next,
            end: Some(s.end),
        };
        let mut req = self
            .client
            .get(url.clone())
            .header(ACCEPT_ENCODING, "identity")
            .header(RANGE, format!("bytes={}-{}", s.next, s.end - 1));
        for h in &cx.properties.custom_headers {
            req = req.header(h.name.as_str(), h.value.as_str());
        }
        if let Some(v) = file.validators.if_range() {
            req = req.header(IF_RANGE, v);
        }
        let credentials = cx.credentials.server.clone();
        if use_auth && let Some(c) = &credentials {
            req = req.basic_auth(&c.user_name, Some(&c.password));
        }
        // What the verdict needs of the file: its validators and size, as they stand now.
        let snapshot = JobFile {
            splits: Vec::new(),
            hash_state: None,
            ..file.clone()
        };
        let props = cx.properties.clone();
        // Credentials go only to the file's own origin, unless the job allows others (as in
        // the one-connection fetch).
        let original = Url::parse(&file.remote_url).ok();
        let may_send = move |to: &Url| {
            props.credentials_across_origins
                || original.as_ref().is_some_and(|o| o.origin() == to.origin())
        };
        let may_authenticate = !use_auth && credentials.is_some() && may_send(&url);
        let props = cx.properties.clone();
        Box::pin(async move {
            let response = match req.send().await {
                Ok(r) => r,
                Err(e) => return Event::Failed(i, transport_failure(&url, &e)),
            };
            let asked = Asked {
                url: &url,
                seg,
                whole: false,
                sent_if_range: snapshot.validators.if_range().is_some(),
                hops,
                may_authenticate,
                remote_size: snapshot.bytes_total,
            };
            match classify(
                response.status(),
                response.headers(),
                &asked,
                &snapshot,
                &props,
            ) {
                Verdict::Range { .. } => Event::Opened(i, response),
                Verdict::Redirect(to) if use_auth && may_send(&to) => {
                    Event::Again(i, Again::WithCredentials(to, hops + 1))
                }
                Verdict::Redirect(to) => Event::Again(i, Again::At(to, hops + 1)),
                Verdict::Authenticate => Event::Again(i, Again::WithCredentials(url, hops)),
                Verdict::Restart { .. } | Verdict::Whole { .. } => Event::Restart,
                Verdict::Fail(f) => Event::Failed(i, f),
            }
        })
    }
}

#[cfg(test)]
mod tests;
