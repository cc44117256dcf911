//! Uploads over the BITS upload protocol ([MC-BUP]), a peer of the download path: one file per
//! job, sent in fragments into a session the server keeps.
//!
//! The session id is recorded before the first byte goes, so that after a crash or a reboot the
//! upload goes on in the same session: a Ping, then the next fragment from the recorded
//! progress; a server that has more (or less) answers 416 with where to go on. A server that
//! lost the session (`BG_E_SESSION_NOT_FOUND`) gets a new one, from byte 0. The file counts as
//! transferred once every byte is acknowledged and Close-Session answered. The source is
//! stamped when its upload begins: a change after that fails the job (`BG_E_LOCAL_FILE_CHANGED`).

mod ack;
mod cancel;
mod fragments;
mod hosts;
mod packet;
mod reply;
mod source;
mod tus;

pub(crate) use cancel::cancel_session;
use hosts::{host_failed, target};
pub(crate) use reply::ReplySlot;

use std::time::{Duration, Instant};

use url::Url;

use self::ack::Ack;
use self::fragments::Sizer;
use self::packet::Packet;
use self::source::Source;
use super::checkpoint::Checkpointer;
use super::http::{certificate_error, transport_failure};
use super::{Failure, Fetched, FileCx};
use crate::error::{ErrorCode, ErrorContext, Status};
use crate::model::{JobFile, UploadSession, UploadState};

/// How long one packet may take, body and answer (Windows allows 5 minutes for the answer).
const PACKET_TIMEOUT: Duration = Duration::from_secs(300);
/// How many times a handshake may ask for CRLs before its failure stands.
const MAX_CRL_ROUNDS: u8 = 2;
/// How many times one run starts over with a new session before calling the server broken.
const MAX_NEW_SESSIONS: u8 = 3;
/// How many answers in a row may leave the server's count where it was.
const MAX_STALLS: u8 = 3;
/// How much of an Ack's body is read (Acks have none; a broken server's is dropped).
const MAX_ACK_BODY: usize = 64 * 1024;

/// Upload one file, from wherever the server's session stands; for upload-reply, `reply`
/// receives the reply.
pub(crate) async fn send(
    cx: &FileCx<'_>,
    file: &mut JobFile,
    url: Url,
    ckpt: &Checkpointer,
    reply: Option<&mut ReplySlot>,
) -> Result<Fetched, Failure> {
    if let Some(endpoint) = tus::endpoint(&url) {
        if reply.is_some() {
            return Err(Failure::new(
                Status::Permanent,
                ErrorContext::RemoteFile,
                ErrorCode::E_INVALIDARG,
                format!("({url}: tus uploads bring back no reply: upload-reply jobs use BITS)"),
            ));
        }
        return tus::send(cx, file, endpoint, ckpt).await;
    }
    let result = match Upload::open(cx, file, url, reply.is_some()).await {
        Ok(mut up) => up.run(cx, file, ckpt, reply).await,
        Err(f) => Err(f),
    };
    // What the run learnt (the session, the server's count) is recorded whatever happened.
    let recorded = ckpt.record_remote(cx.index, file).await;
    match (result, recorded) {
        (Ok(done), Ok(())) => Ok(done),
        (Ok(_), Err(f)) => Err(f),
        (Err(f), recorded) => {
            if let Err(e) = recorded {
                tracing::warn!(error = %e.error.description, "could not record the upload's progress after a failure");
            }
            Err(f)
        }
    }
}

/// How sending fragments ended.
enum Sent {
    /// Every byte is acknowledged (and for upload-reply, the reply URL is known).
    All,
    Stopped,
    /// The server does not know the session (any more).
    Lost,
    /// The reply was gone: ask the session again (the last bytes bring the reply URL, or say
    /// the session is lost).
    Again,
}

/// One run of one upload file.
struct Upload {
    client: reqwest::Client,
    url: Url,
    source: Source,
    name: String,
    sizer: Sizer,
    /// Send the job's server credentials (a challenge asked for them).
    use_auth: bool,
    /// A Ping went out this run (or the session is new and pinned to no host).
    pinged: bool,
    new_sessions: u8,
    stalls: u8,
    crl_rounds: u8,
    /// A reply that was gone made the client ask the session again (once per run).
    reply_asked: bool,
    /// Upload-reply: the last fragment's Ack must carry the reply URL.
    wants_reply: bool,
}

impl Upload {
    /// Open the source and check it against the stamp of an upload already begun.
    async fn open(
        cx: &FileCx<'_>,
        file: &mut JobFile,
        url: Url,
        wants_reply: bool,
    ) -> Result<Self, Failure> {
        let (client, source, name) = begin(cx, file).await?;
        if source.stamp.len == 0 {
            return Err(Failure::new(
                Status::Permanent,
                ErrorContext::LocalFile,
                ErrorCode::E_INVALIDARG,
                format!(
                    "({} is empty: the BITS upload protocol carries no empty file)",
                    file.local_path.display()
                ),
            ));
        }
        Ok(Self {
            client,
            url,
            source,
            name,
            sizer: Sizer::default(),
            use_auth: false,
            pinged: false,
            new_sessions: 0,
            stalls: 0,
            crl_rounds: 0,
            reply_asked: false,
            wants_reply,
        })
    }

    async fn run(
        &mut self,
        cx: &FileCx<'_>,
        file: &mut JobFile,
        ckpt: &Checkpointer,
        mut reply: Option<&mut ReplySlot>,
    ) -> Result<Fetched, Failure> {
        loop {
            if cx.stop.is_cancelled() {
                return Ok(Fetched::Stopped);
            }
            if session(file).is_none() {
                if !self.create_session(cx, file).await? {
                    return Ok(Fetched::Stopped);
                }
                // The session is durable before any byte goes: a crash from here on goes on
                // in it.
                ckpt.record_remote(cx.index, file).await?;
            } else if !self.pinged {
                if !self.ping(cx, file).await? {
                    return Ok(Fetched::Stopped);
                }
                self.pinged = true;
            }
            let mut sent = self.fragments(cx, file, ckpt).await?;
            if let (Sent::All, Some(slot)) = (&sent, reply.as_deref_mut()) {
                sent = self.fetch_reply(cx, file, ckpt, slot).await?;
            }
            if let Sent::All = sent {
                sent = self.close(cx, file).await?;
            }
            match sent {
                Sent::All => break,
                Sent::Stopped => return Ok(Fetched::Stopped),
                Sent::Lost => self.lost(file)?,
                Sent::Again => {}
            }
        }
        file.completed = true;
        if let Some(state) = &mut file.upload {
            state.session = None;
        }
        cx.live.show(cx.index, file);
        Ok(Fetched::Completed)
    }

    /// Fetch the reply the last fragment's Ack named, before the session ends.
    async fn fetch_reply(
        &mut self,
        cx: &FileCx<'_>,
        file: &mut JobFile,
        ckpt: &Checkpointer,
        slot: &mut ReplySlot,
    ) -> Result<Sent, Failure> {
        let Some(sent) = session(file).and_then(|s| s.reply_url.clone()) else {
            return Err(invalid(
                &self.url,
                "the last fragment's Ack has no BITS-Reply-URL",
            ));
        };
        let url = reply::resolve(&target(&self.url, session(file)), &sent)?;
        match reply::fetch(cx, slot, file, &url, ckpt).await {
            Ok(Fetched::Completed) => Ok(Sent::All),
            Ok(Fetched::Stopped) => Ok(Sent::Stopped),
            Err(f)
                if matches!(f.error.code.http_status(), Some(404 | 410)) && !self.reply_asked =>
            {
                // The server may have ended the session (and its reply) while the job waited:
                // the last bytes again say which.
                tracing::info!(%url, "the reply is gone: asking the session again");
                self.reply_asked = true;
                if let Some(s) = file.upload.as_mut().and_then(|u| u.session.as_mut()) {
                    s.reply_url = None;
                }
                Ok(Sent::Again)
            }
            Err(f) => Err(f),
        }
    }

    /// The server lost the session: start over in a new one, unless that happened too often.
    fn lost(&mut self, file: &mut JobFile) -> Result<(), Failure> {
        start_over(&mut self.new_sessions, &self.url, file, "session")?;
        if let Some(state) = &mut file.upload {
            state.session = None;
        }
        Ok(())
    }

    /// Create-Session; `false` if told to stop.
    async fn create_session(
        &mut self,
        cx: &FileCx<'_>,
        file: &mut JobFile,
    ) -> Result<bool, Failure> {
        let name = self.name.clone();
        let packet = Packet::CreateSession { name: &name };
        let Some(ack) = self.exchange(cx, file, &packet).await? else {
            return Ok(false);
        };
        if !ack.is_success() {
            return Err(ack.failure(&self.url, packet.name()));
        }
        if !ack
            .protocol
            .as_deref()
            .is_some_and(|p| p.eq_ignore_ascii_case(ack::PROTOCOL))
        {
            return Err(Failure::new(
                Status::Permanent,
                ErrorContext::RemoteFile,
                ack::PROTOCOL_MISMATCH,
                format!(
                    "({}: the server answered protocol {:?}, not {})",
                    self.url,
                    ack.protocol.unwrap_or_default(),
                    ack::PROTOCOL
                ),
            ));
        }
        let Some(id) = ack.session_id else {
            return Err(invalid(
                &self.url,
                "Create-Session's Ack has no BITS-Session-Id",
            ));
        };
        tracing::info!(session = %id, host = ?ack.host_id, "upload session created");
        let mut session = UploadSession::new(id);
        // After a Host-Id the client Pings the host it names before going on.
        self.pinged = ack.host_id.is_none();
        session.host = ack.host_id;
        session.host_fallback_secs = ack.host_fallback_secs;
        file.upload.get_or_insert_with(UploadState::default).session = Some(session);
        file.bytes_transferred = 0;
        cx.live.show(cx.index, file);
        (cx.connected)();
        Ok(true)
    }

    /// Ping the session's host; `false` if told to stop.
    async fn ping(&mut self, cx: &FileCx<'_>, file: &mut JobFile) -> Result<bool, Failure> {
        let Some(ack) = self.exchange(cx, file, &Packet::Ping).await? else {
            return Ok(false);
        };
        if !ack.is_success() {
            return Err(ack.failure(&self.url, "Ping"));
        }
        (cx.connected)();
        Ok(true)
    }

    /// Send fragments until the server has every byte.
    async fn fragments(
        &mut self,
        cx: &FileCx<'_>,
        file: &mut JobFile,
        ckpt: &Checkpointer,
    ) -> Result<Sent, Failure> {
        let total = self.source.stamp.len;
        loop {
            if cx.stop.is_cancelled() {
                return Ok(Sent::Stopped);
            }
            let at = file.bytes_transferred;
            let needs_reply =
                self.wants_reply && session(file).is_some_and(|s| s.reply_url.is_none());
            if at >= total && !needs_reply {
                return Ok(Sent::All);
            }
            // A fragment takes at most about half a minute at the job's current rate, so that
            // a rate cut mid-upload does not leave a fragment to time out.
            let piece = cx.throttle.piece() as u64;
            let size = match piece.checked_mul(40 * 30) {
                Some(at_rate) => self.sizer.next().min(at_rate.max(fragments::MIN)),
                None => self.sizer.next(),
            };
            // Every byte is there but the reply URL was lost with a crash: the last bytes
            // again (the server writes them once) bring the last fragment's Ack again.
            let first = if at >= total {
                total - size.min(total)
            } else {
                at
            };
            let len = size.min(total - first);
            let id = session(file).map(|s| s.id.clone()).unwrap_or_default();
            let name = self.name.clone();
            let packet = Packet::Fragment {
                session: &id,
                name: &name,
                first,
                len,
                source: self.source.clone(),
                total,
                gate: cx.throttle.gate(),
                piece: cx.throttle.piece(),
            };
            let started = Instant::now();
            let Some(ack) = self.exchange(cx, file, &packet).await? else {
                return Ok(Sent::Stopped);
            };
            if ack.session_lost() {
                return Ok(Sent::Lost);
            }
            if ack.is_success() {
                self.sizer.took(len, started.elapsed());
                self.acknowledged(cx, file, &ack)?;
            } else if ack.bits && ack.status == 416 {
                tracing::debug!(received = ?ack.received, "416: going on from the server's count");
                self.acknowledged(cx, file, &ack)?;
            } else if ack.status == 413 && self.sizer.refused(len) {
                tracing::debug!(
                    refused = len,
                    next = self.sizer.next(),
                    "413: smaller fragments"
                );
            } else {
                return Err(ack.failure(&self.url, "Fragment"));
            }
            // Each acknowledgement is recorded before the next fragment goes, so that a crash
            // costs at most the fragment in flight.
            ckpt.record_remote(cx.index, file).await?;
        }
    }

    /// Take the server's count of received bytes (and on the last byte of an upload-reply, the
    /// reply URL).
    fn acknowledged(
        &mut self,
        cx: &FileCx<'_>,
        file: &mut JobFile,
        ack: &Ack,
    ) -> Result<(), Failure> {
        let total = self.source.stamp.len;
        let Some(received) = ack.received else {
            return Err(invalid(
                &self.url,
                &format!(
                    "its Ack (status {}) has no BITS-Received-Content-Range",
                    ack.status
                ),
            ));
        };
        if received > total {
            return Err(invalid(
                &self.url,
                &format!("it says it has {received} bytes of a {total}-byte file"),
            ));
        }
        let at = file.bytes_transferred;
        if received > at {
            self.stalls = 0;
            cx.live.add_moved(received - at);
        } else if !(self.wants_reply && received == total && ack.is_success()) {
            self.stalls += 1;
            if self.stalls > MAX_STALLS {
                return Err(invalid(
                    &self.url,
                    &format!("its count stayed at {received} bytes {MAX_STALLS} times"),
                ));
            }
        }
        file.bytes_transferred = received;
        if received == total
            && ack.is_success()
            && self.wants_reply
            && let Some(s) = file.upload.as_mut().and_then(|u| u.session.as_mut())
        {
            let Some(url) = &ack.reply_url else {
                return Err(invalid(
                    &self.url,
                    "the last fragment's Ack has no BITS-Reply-URL",
                ));
            };
            s.reply_url = Some(url.clone());
        }
        cx.live.show(cx.index, file);
        Ok(())
    }

    /// Close-Session, sent again on a 5xx (but a lost session) as Windows does.
    async fn close(&mut self, cx: &FileCx<'_>, file: &mut JobFile) -> Result<Sent, Failure> {
        let id = session(file).map(|s| s.id.clone()).unwrap_or_default();
        let packet = Packet::CloseSession { session: &id };
        let mut tries = 0;
        loop {
            let Some(ack) = self.exchange(cx, file, &packet).await? else {
                return Ok(Sent::Stopped);
            };
            if ack.is_success() {
                tracing::info!(session = %id, "upload session closed");
                return Ok(Sent::All);
            }
            if ack.session_lost() {
                return Ok(Sent::Lost);
            }
            tries += 1;
            if !(500..600).contains(&ack.status) || tries >= 3 {
                return Err(ack.failure(&self.url, packet.name()));
            }
        }
    }

    /// Send a packet to the session's host (or the URL's), answering a challenge once with the
    /// job's credentials. `None` if told to stop. A host that cannot be reached is left for the
    /// URL's own once its fallback timeout has passed.
    async fn exchange(
        &mut self,
        cx: &FileCx<'_>,
        file: &mut JobFile,
        packet: &Packet<'_>,
    ) -> Result<Option<Ack>, Failure> {
        loop {
            let target = target(&self.url, session(file));
            cx.throttle.note_server(&target);
            let auth = cx.credentials.server.as_ref().filter(|_| self.use_auth);
            let req = packet
                .request(&self.client, &target, &cx.properties.custom_headers, auth)
                .timeout(PACKET_TIMEOUT);
            let sent = tokio::select! {
                biased;
                () = cx.stop.cancelled() => return Ok(None),
                r = req.send() => r,
            };
            let response = match sent {
                Ok(r) => r,
                Err(e) if wants_crls(&e, self.crl_rounds) => {
                    // With revocation checks on, the handshake named CRLs it lacks.
                    cx.clients.fetch_crls(&self.client, cx.stop).await?;
                    self.crl_rounds += 1;
                    continue;
                }
                Err(e) => {
                    // A fragment's body fails when its source changed: that is the error.
                    self.source.verify().await?;
                    let failure = transport_failure(&target, &e);
                    if target != self.url && e.is_connect() && host_failed(file) {
                        continue;
                    }
                    return Err(failure);
                }
            };
            if let Some(s) = file.upload.as_mut().and_then(|u| u.session.as_mut()) {
                s.host_failing_since = None;
            }
            let status = response.status().as_u16();
            let ack = Ack::read(status, response.headers())
                .map_err(|why| invalid(&target, &format!("its Ack to {}: {why}", packet.name())))?;
            drain(cx, response).await;
            if status == 401 && !self.use_auth && may_answer_challenge(cx, &target, &self.url) {
                self.use_auth = true;
                continue;
            }
            return Ok(Some(ack));
        }
    }
}

/// What every upload run begins with, whatever its protocol: the job's HTTP client, the
/// source opened and checked against the stamp of an upload already begun (or stamped now),
/// and the name it goes by.
async fn begin(
    cx: &FileCx<'_>,
    file: &mut JobFile,
) -> Result<(reqwest::Client, Source, String), Failure> {
    let client = cx.clients.client(cx.properties, cx.credentials)?;
    let path = file.local_path.clone();
    let source = tokio::task::spawn_blocking(move || Source::open(&path))
        .await
        .map_err(|e| Failure::local_io(&file.local_path, &std::io::Error::other(e)))??;
    let state = file.upload.get_or_insert_with(UploadState::default);
    if let Some(stamp) = &state.source {
        source.check(stamp)?;
    } else {
        state.source = Some(source.stamp);
        file.bytes_transferred = 0;
    }
    file.bytes_total = Some(source.stamp.len);
    cx.live.show(cx.index, file);
    let name = file
        .local_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok((client, source, name))
}

/// The server lost the upload (`what`: its session, or its tus upload): it starts over from
/// byte 0, unless that happened [`MAX_NEW_SESSIONS`] times this run (`count`).
fn start_over(count: &mut u8, url: &Url, file: &mut JobFile, what: &str) -> Result<(), Failure> {
    *count += 1;
    if *count > MAX_NEW_SESSIONS {
        return Err(invalid(
            url,
            &format!("the server lost the upload's {what} {MAX_NEW_SESSIONS} times"),
        ));
    }
    tracing::info!("the server does not know the upload's {what}: starting over in a new one");
    file.bytes_transferred = 0;
    Ok(())
}

/// Whether a request's failure is a handshake that lacks CRLs (with revocation checks on),
/// and the run may fetch them once more.
fn wants_crls(e: &reqwest::Error, rounds: u8) -> bool {
    rounds < MAX_CRL_ROUNDS
        && certificate_error(e) == Some(rustls::CertificateError::UnknownRevocationStatus)
}

/// Whether a 401 from `target` may be answered with the job's server credentials: there are
/// some, and `target` is the upload URL's origin (or the job lets credentials cross).
fn may_answer_challenge(cx: &FileCx<'_>, target: &Url, url: &Url) -> bool {
    cx.credentials.server.is_some()
        && (target.origin() == url.origin() || cx.properties.credentials_across_origins)
}

/// The session, if one is open.
fn session(file: &JobFile) -> Option<&UploadSession> {
    file.upload.as_ref().and_then(|u| u.session.as_ref())
}

/// Read what little an Ack's body holds, so that the connection can be used again.
async fn drain(cx: &FileCx<'_>, mut response: reqwest::Response) {
    let mut read = 0;
    while read < MAX_ACK_BODY {
        match tokio::time::timeout(cx.clients.chunk_timeout(), response.chunk()).await {
            Ok(Ok(Some(chunk))) => read += chunk.len(),
            _ => return,
        }
    }
}

fn invalid(url: &Url, why: &str) -> Failure {
    Failure::new(
        Status::Transient,
        ErrorContext::RemoteFile,
        ErrorCode::BG_E_INVALID_SERVER_RESPONSE,
        format!("({url}: {why})"),
    )
}
