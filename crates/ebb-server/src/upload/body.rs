//! A fragment's body as it arrives: the bytes past those the server holds, checked against the
//! fragment's `Content-Range` (a body longer or shorter than it is refused), against its
//! SHA-256 when the client sent one (tus's `Upload-Checksum`), and never left to stall.

use std::time::Duration;

use axum::body::{Body, BodyDataStream, Bytes};
use axum::http::StatusCode;
use futures_util::StreamExt;
use sha2::Digest;

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
    /// The whole body's SHA-256 as the client gave it, and the hash so far.
    digest: Option<([u8; 32], sha2::Sha256)>,
}

/// tus's answer to a body whose checksum is not the one sent.
pub const CHECKSUM_MISMATCH: u16 = 460;

impl NewBytes {
    pub fn new(body: Body, skip: u64, len: u64) -> Self {
        Self {
            stream: body.into_data_stream(),
            seen: 0,
            skip,
            len,
            digest: None,
        }
    }

    /// The whole body must have this SHA-256; if not, it ends in a refusal (460), before its
    /// bytes are counted.
    pub fn with_sha256(mut self, expected: [u8; 32]) -> Self {
        self.digest = Some((expected, sha2::Sha256::new()));
        self
    }

    /// The next new bytes; `None` once the whole body is in, and it was as long as its range.
    pub async fn next(&mut self) -> Result<Option<Bytes>, Refusal> {
        loop {
            let Some(chunk) = tokio::time::timeout(IDLE, self.stream.next())
                .await
                .map_err(|_| Refusal::bad("the fragment's body stalled"))?
            else {
                if self.seen != self.len {
                    return Err(Refusal::bad("the body is shorter than the Content-Range"));
                }
                if let Some((expected, hash)) = self.digest.take()
                    && <[u8; 32]>::from(hash.finalize()) != expected
                {
                    let status =
                        StatusCode::from_u16(CHECKSUM_MISMATCH).unwrap_or(StatusCode::BAD_REQUEST);
                    return Err(
                        Refusal::status(status).because("the body's SHA-256 is not the one sent")
                    );
                }
                return Ok(None);
            };
            let chunk = chunk.map_err(|e| {
                Refusal::bad("the fragment's body broke off").because(e.to_string())
            })?;
            let start = self.skip.saturating_sub(self.seen).min(chunk.len() as u64) as usize;
            self.seen += chunk.len() as u64;
            if let Some((_, hash)) = &mut self.digest {
                hash.update(&chunk);
            }
            if self.seen > self.len {
                return Err(Refusal::bad("the body is longer than the Content-Range"));
            }
            if start < chunk.len() {
                return Ok(Some(chunk.slice(start..)));
            }
        }
    }
}
