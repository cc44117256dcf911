//! The BITS upload protocol's server side ([MC-BUP] §3.2): what the IIS BITS extension does.
//! A session's file is written into a hidden temporary file beside its destination, each
//! fragment at its offset (bytes already received are never written again), made durable and
//! recorded before its Ack; it appears at its name only on Close-Session.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use futures_util::StreamExt;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::App;
use crate::ack::{Ack, Code, Refusal, names};
use crate::config::UploadDir;
use crate::notify;
use crate::packet::{self, FragmentRange, Packet};
use crate::paths::{self, PathError};
use crate::sessions::{Advanced, Open, Session};

/// Serve one `BITS_POST`.
pub async fn serve(
    app: &App,
    dir: &UploadDir,
    (url_path, full_url): (&str, &str),
    user: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Ack, Refusal> {
    let asker = Asker {
        url_path,
        full_url,
        user: user.as_deref(),
    };
    let packet = packet::read(headers)?;
    match &packet {
        Packet::Fragment { session, range } => {
            tracing::debug!(%session, first = range.first, last = range.last, total = range.total, "fragment");
        }
        other => tracing::debug!(packet = ?other, path = url_path, "packet"),
    }
    match packet {
        Packet::Ping => Ok(Ack::ok()),
        Packet::CreateSession => create(app, dir, url_path, user.clone()).await,
        Packet::Fragment { session, range } => {
            let open = find(app, &session).await?;
            let mut s = open.lock().await;
            check(app, &open, &s, &asker)?;
            fragment(app, dir, &mut s, (range, body), &asker).await
        }
        Packet::CloseSession { session } => {
            if app.sessions.find(&session).await.is_ok_and(|o| o.is_none())
                && was_closed(app, &session, &asker).await?
            {
                // Its Ack was lost: it is done.
                return Ok(Ack::ok());
            }
            let open = find(app, &session).await?;
            let mut s = open.lock().await;
            check(app, &open, &s, &asker)?;
            close(app, dir, &mut s, &asker).await
        }
        Packet::CancelSession { session } => {
            let open = find(app, &session).await?;
            let s = open.lock().await;
            check(app, &open, &s, &asker)?;
            end(app, &s).await?;
            Ok(Ack::ok())
        }
    }
}

/// A fragment's body may pause this long between bytes.
const BODY_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

async fn find(app: &App, id: &str) -> Result<Open, Refusal> {
    match app.sessions.find(id).await {
        Ok(Some(open)) => Ok(open),
        Ok(None) => Err(Refusal::session_not_found().because(format!("no session {id}"))),
        Err(e) => Err(store_refusal(&e)),
    }
}

/// [`Sessions::refresh`](crate::sessions::Sessions::refresh), answering as for an unknown
/// session when another node ended it.
async fn refresh(app: &App, s: &mut Session) -> Result<(), Refusal> {
    match app.sessions.refresh(s).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(Refusal::session_not_found().because("another node ended the session")),
        Err(e) => Err(store_refusal(&e)),
    }
}

/// Who sent a packet: through which URL, as which user.
struct Asker<'a> {
    url_path: &'a str,
    /// The upload URL in full, for the server application.
    full_url: &'a str,
    user: Option<&'a str>,
}

/// A session is reached only through the URL it was created for, by the user who created it,
/// and only while it is open (another packet may have closed it while this one waited for its
/// lock).
fn check(app: &App, open: &Open, s: &Session, asker: &Asker<'_>) -> Result<(), Refusal> {
    let current = app
        .sessions
        .get(&s.id)
        .is_some_and(|o| Arc::ptr_eq(&o, open));
    if current && s.url_path == asker.url_path && s.user.as_deref() == asker.user {
        Ok(())
    } else {
        Err(Refusal::session_not_found().because(format!(
            "session {} is not for {} as {:?}",
            s.id, asker.url_path, asker.user
        )))
    }
}

async fn create(
    app: &App,
    dir: &UploadDir,
    url_path: &str,
    user: Option<String>,
) -> Result<Ack, Refusal> {
    let relative = paths::relative(&dir.prefix, url_path).map_err(|e| refuse_path(&e))?;
    let limit = dir.max_sessions_per_user;
    if limit > 0
        && app
            .sessions
            .count(user.as_deref())
            .await
            .map_err(|e| store_refusal(&e))?
            >= limit
    {
        // Busy, not wrong: the client tries again later (a 5xx is transient to it).
        return Err(Refusal::new(StatusCode::SERVICE_UNAVAILABLE, Code::FAIL)
            .because(format!("{user:?} has {limit} sessions open")));
    }
    let (root, overwrite) = (dir.root.clone(), dir.allow_overwrite);
    let uuid = uuid::Uuid::new_v4();
    let (destination, temp) = blocking(move || {
        let destination = paths::under_root(&root, &relative).map_err(|e| refuse_path(&e))?;
        if destination.is_dir() {
            return Err(Refusal::bad("the URL names a directory"));
        }
        if destination.exists() && !overwrite {
            return Err(Refusal::denied(
                "the file exists and may not be overwritten",
            ));
        }
        let temp = destination.with_file_name(format!(".ebb-upload-{}.part", uuid.simple()));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| io_refusal(&temp, &e))?;
        // The name must outlive a power cut as long as the session's row does.
        sync_parent(&temp).map_err(|e| io_refusal(&temp, &e))?;
        Ok((destination, temp))
    })
    .await?;
    let id = format!("{{{}}}", uuid.hyphenated()).to_uppercase();
    let at = now();
    let session = Session {
        id: id.clone(),
        url_path: url_path.to_owned(),
        user,
        destination,
        temp: temp.clone(),
        total: None,
        received: 0,
        created_at: at,
        touched_at: at,
        reply: None,
        keep: false,
    };
    if let Err(e) = app.sessions.create(session).await {
        let _ = std::fs::remove_file(&temp);
        return Err(store_refusal(&e));
    }
    tracing::info!(session = %id, path = url_path, "session created");
    let mut ack = Ack::ok()
        .header(names::PROTOCOL, packet::PROTOCOL)
        .header(names::SESSION_ID, id)
        .header(axum::http::header::ACCEPT_ENCODING, "Identity");
    if let Some(host) = &dir.host_id {
        ack = ack.header(names::HOST_ID, host.clone()).header(
            names::HOST_ID_FALLBACK,
            dir.host_id_fallback_timeout.as_secs().to_string(),
        );
    }
    Ok(ack)
}

async fn fragment(
    app: &App,
    dir: &UploadDir,
    s: &mut Session,
    (range, body): (FragmentRange, Body),
    asker: &Asker<'_>,
) -> Result<Ack, Refusal> {
    s.touched_at = now();
    if !tokio::fs::try_exists(&s.temp).await.unwrap_or(false) {
        // The bytes the session counts are gone (deleted behind the server's back): the
        // client starts over with a new session.
        tracing::warn!(session = %s.id, path = %s.temp.display(), "a session's file is gone");
        end(app, s).await?;
        return Err(Refusal::session_not_found().because("the session's file is gone"));
    }
    if s.total.is_some_and(|t| t != range.total) {
        return Err(Refusal::bad("the file's length changed between fragments"));
    }
    if dir.max_upload_size.is_some_and(|max| range.total > max) {
        return Err(
            Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, Code::FRAGMENT_TOO_LARGE).because(
                format!("{} bytes is over the directory's limit", range.total),
            ),
        );
    }
    if range.len() > dir.max_fragment_size {
        return Err(Refusal::status(StatusCode::PAYLOAD_TOO_LARGE)
            .because("a fragment over the size taken at once"));
    }
    if range.first > s.received {
        refresh(app, s).await?;
    }
    if range.first > s.received {
        // A gap (after asking the store: another node may have taken the bytes between): the
        // client goes on from what is here.
        return Ok(Ack::ok()
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .received(s.received));
    }
    if range.last >= s.received {
        let skip = s.received - range.first;
        write_at(&s.temp, s.received, skip, range.len(), body).await?;
        let before = (s.received, s.total, s.touched_at);
        (s.received, s.total, s.touched_at) = (range.last + 1, Some(range.total), now());
        match app.sessions.advance(s, before.0).await {
            Ok(Advanced::Done) => {}
            Ok(Advanced::Lost { committed }) => {
                // Another writer counted its bytes first: the client goes on from there.
                tracing::warn!(session = %s.id, committed, "another writer moved the session");
                s.received = committed;
                return Ok(Ack::ok()
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .received(committed));
            }
            Ok(Advanced::Gone) => {
                // Another node ended it: this one forgets it too.
                let _ = app.sessions.remove(&s.id).await;
                return Err(Refusal::session_not_found().because("the session ended meanwhile"));
            }
            Err(e) => {
                (s.received, s.total, s.touched_at) = before;
                return Err(store_refusal(&e));
            }
        }
    }
    let mut ack = Ack::ok().received(s.received);
    if let Some(how) = &dir.notification
        && s.total == Some(s.received)
    {
        ack = ack.header(names::REPLY_URL, reply(app, how, s, asker.full_url).await?);
    }
    Ok(ack)
}

/// Upload-reply: once the last byte is in, the server application's reply, asked for once
/// (a re-sent last fragment gets the same URL).
async fn reply(
    app: &App,
    how: &notify::Notification,
    s: &mut Session,
    full_url: &str,
) -> Result<String, Refusal> {
    if let Some(url) = &s.reply {
        return Ok(url.clone());
    }
    let file = notify::reply_path(&app.config.state_dir(), &s.key());
    let upload = notify::Upload {
        url: full_url,
        file: &s.temp,
        reply: &file,
    };
    let answer = notify::notify(how, &upload).await?;
    tracing::info!(session = %s.id, static_url = ?answer.static_url, keep = answer.keep, "the server application answered");
    let url = answer
        .static_url
        .unwrap_or_else(|| format!("BITS-Sessions\\Replies\\{}\\responsefile.bin", s.key()));
    (s.reply, s.keep) = (Some(url.clone()), answer.keep);
    if let Err(e) = app.sessions.update(s).await {
        (s.reply, s.keep) = (None, false);
        return Err(store_refusal(&e));
    }
    Ok(url)
}

/// Sweep the sessions that heard nothing for their directory's timeout, with their temporary
/// files, and forget the sessions closed long ago. A session serving a packet is alive.
pub async fn sweep(app: &App) {
    let at = now();
    for open in app.sessions.all() {
        let Ok(mut s) = open.try_lock() else {
            continue;
        };
        let timeout = app
            .config
            .directory(&s.url_path)
            .map_or(std::time::Duration::ZERO, |d| d.session_timeout);
        let timeout = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        if s.touched_at.saturating_add(timeout) > at {
            continue;
        }
        // Another node may be serving it: expired only if the store says so too.
        match app.sessions.refresh(&mut s).await {
            Ok(true) if s.touched_at.saturating_add(timeout) > at => continue,
            Ok(true) => {}
            // Another node ended it.
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(session = %s.id, error = %e, "cannot check an expired session");
                continue;
            }
        }
        tracing::info!(session = %s.id, path = %s.url_path, "session expired");
        if let Err(r) = end(app, &s).await {
            tracing::warn!(session = %s.id, why = %r.why, "cannot sweep an expired session");
        }
    }
    if let Err(e) = app.sessions.forget_closed(at).await {
        tracing::warn!(error = %e, "cannot forget closed sessions");
    }
}

/// Write a fragment's body into `temp` at `offset`, its first `skip` bytes left out (they are
/// there already), and make it durable. The body must be `len` bytes long.
async fn write_at(
    temp: &Path,
    offset: u64,
    skip: u64,
    len: u64,
    body: Body,
) -> Result<(), Refusal> {
    let io = |e: std::io::Error| io_refusal(temp, &e);
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .open(temp)
        .await
        .map_err(io)?;
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(io)?;
    let (mut seen, mut stream) = (0u64, body.into_data_stream());
    let stalled = || Refusal::bad("the fragment's body stalled");
    while let Some(chunk) = tokio::time::timeout(BODY_IDLE, stream.next())
        .await
        .map_err(|_| stalled())?
    {
        let chunk = chunk
            .map_err(|e| Refusal::bad("the fragment's body broke off").because(e.to_string()))?;
        let start = skip.saturating_sub(seen).min(chunk.len() as u64) as usize;
        seen += chunk.len() as u64;
        if seen > len {
            return Err(Refusal::bad("the body is longer than the Content-Range"));
        }
        file.write_all(&chunk[start..]).await.map_err(io)?;
    }
    if seen != len {
        return Err(Refusal::bad("the body is shorter than the Content-Range"));
    }
    file.flush().await.map_err(io)?;
    file.sync_data().await.map_err(io)
}

/// Close-Session: a whole file goes to its name, durably; a partial one is deleted.
async fn close(
    app: &App,
    dir: &UploadDir,
    s: &mut Session,
    asker: &Asker<'_>,
) -> Result<Ack, Refusal> {
    // Another node may have taken the last fragments: never judge the upload on a stale copy.
    // One that closed it already answered this close before.
    if let Err(refusal) = refresh(app, s).await {
        return if was_closed(app, &s.id, asker).await? {
            Ok(Ack::ok())
        } else {
            Err(refusal)
        };
    }
    let whole = s.total.is_some_and(|t| t == s.received);
    // With a notification, the application has the upload: it stays only if asked for.
    let keep = dir.notification.is_none() || s.keep;
    if whole && keep {
        let (temp, destination, overwrite) =
            (s.temp.clone(), s.destination.clone(), dir.allow_overwrite);
        if let Err(refusal) = blocking(move || finish(&temp, &destination, overwrite)).await {
            if refusal.status == StatusCode::FORBIDDEN {
                // Someone else's file took the name: this upload cannot be placed, ever.
                end(app, s).await?;
            }
            return Err(refusal);
        }
        tracing::info!(session = %s.id, path = %s.destination.display(), bytes = s.received, "upload closed");
    } else {
        tracing::info!(session = %s.id, "session closed before its last fragment: the partial upload is deleted");
    }
    app.sessions
        .close(s, now())
        .await
        .map_err(|e| store_refusal(&e))?;
    delete_files(app, s).await;
    Ok(Ack::ok())
}

/// Whether another packet closed session `id` for this asker, lately (see
/// [`Sessions::close`](crate::sessions::Sessions::close)).
async fn was_closed(app: &App, id: &str, asker: &Asker<'_>) -> Result<bool, Refusal> {
    app.sessions
        .was_closed(id, asker.url_path, asker.user)
        .await
        .map_err(|e| store_refusal(&e))
}

fn store_refusal(e: &crate::Error) -> Refusal {
    Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, Code::FAIL).because(e.to_string())
}

/// Forget a session and delete what is left of its temporary file.
async fn end(app: &App, s: &Session) -> Result<(), Refusal> {
    app.sessions
        .remove(&s.id)
        .await
        .map_err(|e| store_refusal(&e))?;
    delete_files(app, s).await;
    Ok(())
}

/// Delete what is left of a session's temporary file and reply.
async fn delete_files(app: &App, s: &Session) {
    let files = [
        s.temp.clone(),
        notify::reply_path(&app.config.state_dir(), &s.key()),
    ];
    blocking(move || {
        for file in files {
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %file.display(), error = %e, "cannot delete a session's file");
                }
            }
        }
        Ok(())
    })
    .await
    .unwrap_or(());
}

/// Put the finished temporary file at its name: without replacing a file that appeared
/// meanwhile unless overwriting is allowed; then make the directory entry durable.
fn finish(temp: &Path, destination: &Path, overwrite: bool) -> Result<(), Refusal> {
    if !temp.exists() && destination.exists() {
        // A Close-Session re-sent after a crash that came after the rename: the session's row
        // is still there, its file is at its name already.
        tracing::warn!(path = %destination.display(), "the upload is at its name already");
        return sync_parent(destination).map_err(|e| io_refusal(destination, &e));
    }
    if overwrite {
        std::fs::rename(temp, destination).map_err(|e| io_refusal(destination, &e))?;
    } else {
        match std::fs::hard_link(temp, destination) {
            Ok(()) => {}
            // Linked before a crash, and the temporary name not yet removed: ours.
            Err(e)
                if e.kind() == std::io::ErrorKind::AlreadyExists
                    && same_file(temp, destination) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Refusal::denied(
                    "the file exists and may not be overwritten",
                ));
            }
            Err(e) => return Err(io_refusal(destination, &e)),
        }
        std::fs::remove_file(temp).map_err(|e| io_refusal(temp, &e))?;
    }
    sync_parent(destination).map_err(|e| io_refusal(destination, &e))
}

/// Whether two names are links to one file.
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    if cfg!(windows) {
        return Ok(());
    }
    match path.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

fn refuse_path(e: &PathError) -> Refusal {
    let why = e.to_string();
    let r = match e {
        PathError::Segment(_) | PathError::NoFile => Refusal::bad("a path that is not allowed"),
        PathError::Link(_) => Refusal::denied("a path through a symbolic link"),
        PathError::NotHere | PathError::Io(..) => Refusal::status(StatusCode::NOT_FOUND),
    };
    r.because(why)
}

fn io_refusal(path: &Path, e: &std::io::Error) -> Refusal {
    let full = e.raw_os_error() == Some(libc_enospc());
    let code = if full { Code::DISK_FULL } else { Code::FAIL };
    Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, code)
        .because(format!("{}: {e}", path.display()))
}

/// ENOSPC, or Windows's ERROR_DISK_FULL.
fn libc_enospc() -> i32 {
    if cfg!(windows) { 112 } else { 28 }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Refusal> + Send + 'static,
) -> Result<T, Refusal> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, Code::FAIL).because(e.to_string()))
    })
}
