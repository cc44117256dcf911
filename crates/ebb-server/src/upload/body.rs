//! A fragment's body as it arrives: the bytes past those the server holds, checked against the
//! fragment's `Content-Range` (a body longer or shorter than it is refused) and never left to
//! stall.

use std::time::Duration;

use axum::body::{Body, BodyDataStream, Bytes};
use futures_util::StreamExt;

use crate::ack::Refusal;

/// A fragment's body may pause this long between bytes.
const IDLE: Duration = Duration::from_secs(60);

/// The new bytes of a fragment's body.
pub struct NewBytes {
    stream: BodyDataStream,
    /// Bytes of the body seen so far.
    seen: u64,
    /// The body's first `skip` bytes are held already.
    skip: u64,
    /// The body's length, from its `Content-Range`.
    len: u64,
}

impl NewBytes {
    pub fn new(body: Body, skip: u64, len: u64) -> Self {
        Self {
            stream: body.into_data_stream(),
            seen: 0,
            skip,
            len,
        }
    }

    /// The next new bytes; `None` once the whole body is in, and it was as long as its range.
    pub async fn next(&mut self) -> Result<Option<Bytes>, Refusal> {
        loop {
            let Some(chunk) = tokio::time::timeout(IDLE, self.stream.next())
                .await
                .map_err(|_| Refusal::bad("the fragment's body stalled"))?
            else {
                return if self.seen == self.len {
                    Ok(None)
                } else {
                    Err(Refusal::bad("the body is shorter than the Content-Range"))
                };
            };
            let chunk = chunk.map_err(|e| {
                Refusal::bad("the fragment's body broke off").because(e.to_string())
            })?;
            let start = self.skip.saturating_sub(self.seen).min(chunk.len() as u64) as usize;
            self.seen += chunk.len() as u64;
            if self.seen > self.len {
                return Err(Refusal::bad("the body is longer than the Content-Range"));
            }
            if start < chunk.len() {
                return Ok(Some(chunk.slice(start..)));
            }
        }
    }
}
