//! Uploads over tus 1.0 (<https://tus.io/protocols/resumable-upload>), the open resumable
//! upload protocol, chosen by a `tus+http(s)://` URL: the same job type, states, progress and
//! errors as a BITS upload. Core protocol, creation, termination and checksum.
//!
//! The upload's location is recorded before its first byte goes, so that after a crash the
//! client asks the server where it stands (`HEAD`) and goes on from there. When the server
//! offers the checksum extension with SHA-256, every chunk carries its digest and a chunk the
//! server got wrong is refused and sent again: the file is never Transferred with wrong bytes.
//! An upload the server forgot (404, 410) starts over in a new one.

use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use sha2::Digest;
use url::Url;

use super::fragments::Sizer;
use super::source::Source;
use super::{PACKET_TIMEOUT, ack, drain, invalid};
use crate::error::{ErrorCode, ErrorContext, Status};
use crate::model::{JobFile, TusUpload, UploadState};
use crate::transfer::checkpoint::Checkpointer;
use crate::transfer::http::transport_failure;
use crate::transfer::{Failure, Fetched, FileCx};

const VERSION: &str = "1.0.0";
/// How often one chunk may come back refused by its checksum before the run fails.
const MAX_MISMATCHES: u8 = 3;

/// The URL a tus upload is created at: a `tus+http(s)` URL without its `tus+`.
pub(crate) fn endpoint(url: &Url) -> Option<Url> {
    let scheme = url.scheme().strip_prefix("tus+")?;
    let rest = url.as_str().split_once(':')?.1;
    Url::parse(&format!("{scheme}:{rest}")).ok()
}

/// Upload one file over tus.
pub(crate) async fn send(
    cx: &FileCx<'_>,
    file: &mut JobFile,
    url: Url,
    ckpt: &Checkpointer,
) -> Result<Fetched, Failure> {
    let result = match Tus::open(cx, file, url).await {
        Ok(mut tus) => tus.run(cx, file, ckpt).await,
        Err(f) => Err(f),
    };
    let recorded = ckpt.record_remote(cx.index, file).await;
    match (result, recorded) {
        (Ok(done), Ok(())) => Ok(done),
        (Ok(_), Err(f)) | (Err(f), _) => Err(f),
    }
}

/// One run of one tus upload.
struct Tus {
    client: reqwest::Client,
    /// Where uploads are created.
    url: Url,
    source: Source,
    name: String,
    sizer: Sizer,
    use_auth: bool,
    /// The server checks a chunk's SHA-256 (it offers the checksum extension with it).
    checksums: bool,
    /// The upload's offset was asked for this run.
    headed: bool,
    new_uploads: u8,
    mismatches: u8,
    crl_rounds: u8,
}

/// What a request asks.
enum Ask<'a> {
    Options,
    Create,
    Head(&'a Url),
    Patch {
        at: &'a Url,
        offset: u64,
        len: u64,
        sha256: Option<String>,
    },
}

impl Tus {
    async fn open(cx: &FileCx<'_>, file: &mut JobFile, url: Url) -> Result<Self, Failure> {
        let (client, source, name) = super::begin(cx, file).await?;
        Ok(Self {
            client,
            url,
            source,
            name,
            sizer: Sizer::default(),
            use_auth: false,
            checksums: false,
            headed: false,
            new_uploads: 0,
            mismatches: 0,
            crl_rounds: 0,
        })
    }

    async fn run(
        &mut self,
        cx: &FileCx<'_>,
        file: &mut JobFile,
        ckpt: &Checkpointer,
    ) -> Result<Fetched, Failure> {
        if !self.options(cx).await? {
            return Ok(Fetched::Stopped);
        }
        loop {
            if cx.stop.is_cancelled() {
                return Ok(Fetched::Stopped);
            }
            let Some(at) = location(file) else {
                if !self.create(cx, file).await? {
                    return Ok(Fetched::Stopped);
                }
                // The location is durable before any byte goes.
                ckpt.record_remote(cx.index, file).await?;
                continue;
            };
            if !self.headed {
                match self.head(cx, file, &at).await? {
                    Some(true) => self.headed = true,
                    Some(false) => {
                        self.lost(file)?;
                        continue;
                    }
                    None => return Ok(Fetched::Stopped),
                }
            }
            match self.chunks(cx, file, ckpt, &at).await? {
                Sent::All => break,
                Sent::Stopped => return Ok(Fetched::Stopped),
                Sent::Lost => self.lost(file)?,
                Sent::Conflict => self.headed = false,
            }
        }
        file.completed = true;
        if let Some(state) = &mut file.upload {
            state.tus = None;
        }
        cx.live.show(cx.index, file);
        Ok(Fetched::Completed)
    }

    /// Ask what the server offers; `false` if told to stop. A server that does not answer
    /// `OPTIONS` is taken to speak the core protocol alone.
    async fn options(&mut self, cx: &FileCx<'_>) -> Result<bool, Failure> {
        let Some(r) = self.exchange(cx, &Ask::Options).await? else {
            return Ok(false);
        };
        let list = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| {
                    v.split(',')
                        .any(|x| x.trim() == "checksum" || x.trim() == "sha256")
                })
        };
        self.checksums =
            r.status().is_success() && list("tus-extension") && list("tus-checksum-algorithm");
        tracing::debug!(url = %self.url, checksums = self.checksums, "tus server");
        drain(cx, r).await;
        Ok(true)
    }

    /// Creation: a new upload of the file's length; `false` if told to stop.
    async fn create(&mut self, cx: &FileCx<'_>, file: &mut JobFile) -> Result<bool, Failure> {
        let Some(r) = self.exchange(cx, &Ask::Create).await? else {
            return Ok(false);
        };
        let status = r.status().as_u16();
        let at = r
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        drain(cx, r).await;
        if status != 201 {
            return Err(refused(&self.url, "creating the upload", status));
        }
        let Some(at) = at.and_then(|l| self.url.join(&l).ok()) else {
            return Err(invalid(&self.url, "its 201 has no Location"));
        };
        tracing::info!(location = %at, "tus upload created");
        file.upload.get_or_insert_with(UploadState::default).tus = Some(TusUpload {
            location: at.to_string(),
        });
        file.bytes_transferred = 0;
        (self.headed, self.sizer) = (true, Sizer::default());
        cx.live.show(cx.index, file);
        (cx.connected)();
        Ok(true)
    }

    /// Where the server stands; `Some(false)`: it does not know the upload (any more).
    async fn head(
        &mut self,
        cx: &FileCx<'_>,
        file: &mut JobFile,
        at: &Url,
    ) -> Result<Option<bool>, Failure> {
        let Some(r) = self.exchange(cx, &Ask::Head(at)).await? else {
            return Ok(None);
        };
        let status = r.status().as_u16();
        let number = |name: &str| -> Option<u64> {
            r.headers().get(name)?.to_str().ok()?.trim().parse().ok()
        };
        let (offset, length) = (number("upload-offset"), number("upload-length"));
        drain(cx, r).await;
        match status {
            404 | 410 => return Ok(Some(false)),
            200 | 204 => {}
            _ => return Err(refused(at, "asking the upload's offset", status)),
        }
        let total = self.source.stamp.len;
        if length.is_some_and(|l| l != total) {
            tracing::warn!(
                ?length,
                total,
                "the server's upload has another length: a new one"
            );
            return Ok(Some(false));
        }
        let Some(offset) = offset.filter(|&o| o <= total) else {
            return Err(invalid(at, "its HEAD has no Upload-Offset within the file"));
        };
        tracing::debug!(offset, "tus: going on from the server's offset");
        file.bytes_transferred = offset;
        cx.live.show(cx.index, file);
        (cx.connected)();
        Ok(Some(true))
    }

    /// The server lost the upload: a new one, unless that happened too often.
    fn lost(&mut self, file: &mut JobFile) -> Result<(), Failure> {
        super::start_over(&mut self.new_uploads, &self.url, file, "tus upload")?;
        if let Some(state) = &mut file.upload {
            state.tus = None;
        }
        Ok(())
    }
}

/// How sending chunks ended.
enum Sent {
    All,
    Stopped,
    Lost,
    /// The server's offset is not the client's: ask it again.
    Conflict,
}

impl Tus {
    async fn chunks(
        &mut self,
        cx: &FileCx<'_>,
        file: &mut JobFile,
        ckpt: &Checkpointer,
        at: &Url,
    ) -> Result<Sent, Failure> {
        let total = self.source.stamp.len;
        loop {
            let offset = file.bytes_transferred;
            if offset >= total {
                return Ok(Sent::All);
            }
            if cx.stop.is_cancelled() {
                return Ok(Sent::Stopped);
            }
            let piece = cx.throttle.piece() as u64;
            let size = match piece.checked_mul(40 * 30) {
                Some(at_rate) => self.sizer.next().min(at_rate.max(1024)),
                None => self.sizer.next(),
            };
            let len = size.min(total - offset);
            let sha256 = if self.checksums {
                let bytes = self
                    .source
                    .read(offset, usize::try_from(len).unwrap_or(usize::MAX))
                    .await?;
                let digest = sha2::Sha256::digest(&bytes);
                Some(base64::engine::general_purpose::STANDARD.encode(digest))
            } else {
                None
            };
            let started = Instant::now();
            let ask = Ask::Patch {
                at,
                offset,
                len,
                sha256,
            };
            let Some(r) = self.exchange(cx, &ask).await? else {
                return Ok(Sent::Stopped);
            };
            let status = r.status().as_u16();
            let moved = r
                .headers()
                .get("upload-offset")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            drain(cx, r).await;
            match status {
                200 | 204 => {
                    self.sizer.took(len, started.elapsed());
                    self.mismatches = 0;
                    let Some(now) = moved.filter(|&n| n > offset && n <= total) else {
                        return Err(invalid(
                            at,
                            "its PATCH answer has no Upload-Offset past the chunk's start",
                        ));
                    };
                    cx.live.add_moved(now - offset);
                    file.bytes_transferred = now;
                    cx.live.show(cx.index, file);
                    ckpt.record_remote(cx.index, file).await?;
                }
                409 => return Ok(Sent::Conflict),
                404 | 410 => return Ok(Sent::Lost),
                413 if self.sizer.refused(len) => {}
                460 => self.mismatch(at)?,
                _ => return Err(refused(at, "a chunk", status)),
            }
        }
    }

    /// The server's digest of a chunk was not the client's: the chunk went wrong on the way.
    fn mismatch(&mut self, at: &Url) -> Result<(), Failure> {
        self.mismatches += 1;
        tracing::warn!(%at, mismatches = self.mismatches, "the server refused a chunk by its checksum");
        if self.mismatches >= MAX_MISMATCHES {
            return Err(Failure::new(
                Status::Transient,
                ErrorContext::RemoteFile,
                ErrorCode::E_DIGEST_MISMATCH,
                format!(
                    "({at}: the server got a chunk wrong {MAX_MISMATCHES} times: its SHA-256 did not match)"
                ),
            ));
        }
        Ok(())
    }

    fn request(&self, cx: &FileCx<'_>, ask: &Ask<'_>) -> reqwest::RequestBuilder {
        let (method, url) = match ask {
            Ask::Options => (reqwest::Method::OPTIONS, &self.url),
            Ask::Create => (reqwest::Method::POST, &self.url),
            Ask::Head(at) => (reqwest::Method::HEAD, *at),
            Ask::Patch { at, .. } => (reqwest::Method::PATCH, *at),
        };
        let mut req = self
            .client
            .request(method, url.clone())
            .timeout(PACKET_TIMEOUT);
        if !matches!(ask, Ask::Options) {
            req = req.header("Tus-Resumable", VERSION);
        }
        for h in &cx.properties.custom_headers {
            req = req.header(h.name.as_str(), h.value.as_str());
        }
        if let Some(c) = cx.credentials.server.as_ref().filter(|_| self.use_auth) {
            req = req.basic_auth(&c.user_name, Some(&c.password));
        }
        match ask {
            Ask::Options | Ask::Head(_) => req,
            Ask::Create => {
                let name = base64::engine::general_purpose::STANDARD.encode(&self.name);
                req.header("Upload-Length", self.source.stamp.len)
                    .header("Upload-Metadata", format!("filename {name}"))
                    .header(CONTENT_LENGTH, 0)
            }
            Ask::Patch {
                offset,
                len,
                sha256,
                ..
            } => {
                let mut req = req
                    .header(CONTENT_TYPE, "application/offset+octet-stream")
                    .header("Upload-Offset", *offset)
                    .header(CONTENT_LENGTH, *len)
                    .body(self.source.body(
                        (*offset, *len),
                        cx.throttle.gate(),
                        cx.throttle.piece(),
                    ));
                if let Some(sum) = sha256 {
                    req = req.header("Upload-Checksum", format!("sha256 {sum}"));
                }
                req
            }
        }
    }

    /// Send a request, answering a challenge once with the job's credentials. `None` if told
    /// to stop.
    async fn exchange(
        &mut self,
        cx: &FileCx<'_>,
        ask: &Ask<'_>,
    ) -> Result<Option<reqwest::Response>, Failure> {
        loop {
            let target = match ask {
                Ask::Head(at) | Ask::Patch { at, .. } => (*at).clone(),
                Ask::Options | Ask::Create => self.url.clone(),
            };
            cx.throttle.note_server(&target);
            let sent = tokio::select! {
                biased;
                () = cx.stop.cancelled() => return Ok(None),
                r = self.request(cx, ask).send() => r,
            };
            let response = match sent {
                Ok(r) => r,
                Err(e) if super::wants_crls(&e, self.crl_rounds) => {
                    cx.clients.fetch_crls(&self.client, cx.stop).await?;
                    self.crl_rounds += 1;
                    continue;
                }
                Err(e) => {
                    self.source.verify().await?;
                    return Err(transport_failure(&target, &e));
                }
            };
            if response.status() == 401
                && !self.use_auth
                && super::may_answer_challenge(cx, &target, &self.url)
            {
                self.use_auth = true;
                drain(cx, response).await;
                continue;
            }
            return Ok(Some(response));
        }
    }
}

/// The upload's location, once created.
fn location(file: &JobFile) -> Option<Url> {
    let at = file.upload.as_ref()?.tus.as_ref()?;
    Url::parse(&at.location).ok()
}

/// A refusal by HTTP status, worth trying again as BITS judges one.
fn refused(url: &Url, what: &str, status: u16) -> Failure {
    let code = ErrorCode::http(status);
    Failure::new(
        ack::classify(status, code),
        ErrorContext::RemoteFile,
        code,
        format!("({url}: {what} refused with HTTP status {status})"),
    )
}

/// Termination: the upload of a cancelled job is deleted on the server, best effort; `false`
/// if the file has no tus upload.
pub(crate) async fn cancel(
    client: &reqwest::Client,
    file: &JobFile,
    properties: &crate::model::JobProperties,
    credentials: &crate::model::Credentials,
) -> bool {
    let Some(at) = location(file) else {
        return false;
    };
    let mut req = client
        .delete(at.clone())
        .header("Tus-Resumable", VERSION)
        .timeout(Duration::from_secs(30));
    for h in &properties.custom_headers {
        req = req.header(h.name.as_str(), h.value.as_str());
    }
    if let Some(c) = &credentials.server {
        req = req.basic_auth(&c.user_name, Some(&c.password));
    }
    match req.send().await {
        Ok(r) => tracing::info!(%at, status = r.status().as_u16(), "tus upload deleted"),
        Err(e) => {
            let error = crate::transfer::http::error_chain(&e);
            tracing::info!(%at, %error, "could not delete the tus upload");
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tus_url_is_its_http_url() {
        let e = |s: &str| endpoint(&Url::parse(s).unwrap()).map(String::from);
        assert_eq!(
            e("tus+https://h:8443/files/?a=b").as_deref(),
            Some("https://h:8443/files/?a=b")
        );
        assert_eq!(
            e("tus+http://h/up/a.bin").as_deref(),
            Some("http://h/up/a.bin")
        );
        assert_eq!(e("http://h/up/a.bin"), None);
    }
}
