//! The BITS upload protocol's server side ([MC-BUP] §3.2): what the IIS BITS extension does.
//! A session's bytes go to a hidden temporary file beside its destination ([`file`]) or to a
//! multipart upload in object storage ([`object`]); bytes already received are never written
//! again, and bytes are durable and counted by the session's row (a compare-and-set) before
//! they are acknowledged. The upload appears at its name only on Close-Session.

pub mod body;
pub mod file;
mod object;
mod reply;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};

use crate::App;
use crate::ack::{Ack, Code, Refusal, names};
use crate::config::UploadDir;
use crate::notify;
use crate::packet::{self, FragmentRange, Packet};
use crate::paths;
use crate::sessions::{Advanced, Open, Session, Target};
use body::NewBytes;

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

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) async fn find(app: &App, id: &str) -> Result<Open, Refusal> {
    match app.sessions.find(id).await {
        Ok(Some(open)) => Ok(open),
        Ok(None) => Err(Refusal::session_not_found().because(format!("no session {id}"))),
        Err(e) => Err(store_refusal(&e)),
    }
}

/// [`Sessions::refresh`](crate::sessions::Sessions::refresh), answering as for an unknown
/// session when another node ended it.
pub(crate) async fn refresh(app: &App, s: &mut Session) -> Result<(), Refusal> {
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
    let s = open_session(app, dir, url_path, user, None).await?;
    let mut ack = Ack::ok()
        .header(names::PROTOCOL, packet::PROTOCOL)
        .header(names::SESSION_ID, s.id)
        .header(axum::http::header::ACCEPT_ENCODING, "Identity");
    if let Some(host) = &dir.host_id {
        ack = ack.header(names::HOST_ID, host.clone()).header(
            names::HOST_ID_FALLBACK,
            dir.host_id_fallback_timeout.as_secs().to_string(),
        );
    }
    Ok(ack)
}

/// A new session for the file `url_path` names, of `total` bytes if known: within the user's
/// limit, where the file (or object) may go, its target made and its row written.
pub(crate) async fn open_session(
    app: &App,
    dir: &UploadDir,
    url_path: &str,
    user: Option<String>,
    total: Option<u64>,
) -> Result<Session, Refusal> {
    let relative = paths::relative(&dir.prefix, url_path).map_err(|e| file::refuse_path(&e))?;
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
    let uuid = uuid::Uuid::new_v4();
    let target = match (&app.objects, &dir.root) {
        (Some(objects), _) => {
            let key = objects.key(&dir.prefix, &relative);
            if !dir.allow_overwrite && objects.exists(&key).await? {
                return Err(Refusal::denied(
                    "the object exists and may not be overwritten",
                ));
            }
            let name = uuid.simple().to_string();
            let staged = dir.notification.is_some();
            Target::Object(objects.create(key, &name, staged).await?)
        }
        (None, Some(root)) => {
            let (destination, temp) =
                file::create(root.clone(), relative, dir.allow_overwrite, uuid).await?;
            Target::File { destination, temp }
        }
        (None, None) => {
            return Err(Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, Code::FAIL)
                .because("a directory with no root and no object storage"));
        }
    };
    let id = format!("{{{}}}", uuid.hyphenated()).to_uppercase();
    let at = now();
    let session = Session {
        id: id.clone(),
        url_path: url_path.to_owned(),
        user,
        target,
        total,
        received: 0,
        created_at: at,
        touched_at: at,
        reply: None,
        keep: false,
    };
    if let Err(e) = app.sessions.create(session.clone()).await {
        discard(app, &session).await;
        return Err(store_refusal(&e));
    }
    tracing::info!(session = %id, path = url_path, "session created");
    Ok(session)
}

async fn fragment(
    app: &App,
    dir: &UploadDir,
    s: &mut Session,
    (range, body): (FragmentRange, Body),
    asker: &Asker<'_>,
) -> Result<Ack, Refusal> {
    s.touched_at = now();
    check_fragment(app, dir, s, range).await?;
    if range.first > s.held() {
        refresh(app, s).await?;
    }
    if range.first > s.held() {
        // A gap (after asking the store: another node may have taken the bytes between): the
        // client goes on from what is here.
        return Ok(Ack::ok()
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .received(s.held()));
    }
    if range.last >= s.held() {
        let body = NewBytes::new(body, s.held() - range.first, range.len());
        match take(app, s, range, body).await? {
            Committed::Done => {}
            // Another writer counted its bytes first: the client goes on from there.
            Committed::Lost(committed) => {
                return Ok(Ack::ok()
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .received(committed));
            }
            Committed::Gone => {
                return Err(Refusal::session_not_found().because("the session ended meanwhile"));
            }
        }
    }
    let mut ack = Ack::ok().received(s.held());
    if let Some(how) = &dir.notification
        && s.total == Some(s.received)
    {
        ack = ack.header(
            names::REPLY_URL,
            reply::reply(app, how, s, asker.full_url).await?,
        );
    }
    Ok(ack)
}

/// Take `body`, the new bytes of `range` (those past what `s` holds), and count them.
pub(crate) async fn take(
    app: &App,
    s: &mut Session,
    range: FragmentRange,
    body: NewBytes,
) -> Result<Committed, Refusal> {
    let held = s.held();
    let moved = match &s.target {
        Target::File { temp, .. } => {
            file::write_at(temp, held, body).await?;
            s.total = Some(range.total);
            commit(app, s, range.last + 1).await?
        }
        Target::Object(_) => object::fragment(app, s, range, body)
            .await?
            .unwrap_or(Committed::Done),
    };
    if moved == Committed::Done {
        tracing::debug!(session = %s.id, from = held, to = range.last + 1, "bytes taken");
    }
    Ok(moved)
}

/// A fragment the session may take: its file still there, the same total, within the
/// directory's limits.
pub(crate) async fn check_fragment(
    app: &App,
    dir: &UploadDir,
    s: &Session,
    range: FragmentRange,
) -> Result<(), Refusal> {
    if let Target::File { temp, .. } = &s.target
        && !tokio::fs::try_exists(temp).await.unwrap_or(false)
    {
        // The bytes the session counts are gone (deleted behind the server's back): the
        // client starts over with a new session.
        tracing::warn!(session = %s.id, path = %temp.display(), "a session's file is gone");
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
    Ok(())
}

/// What [`commit`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Committed {
    Done,
    /// Another writer moved the session first, to this count; `s` is now as stored.
    Lost(u64),
    /// Another node ended the session; this one forgot it.
    Gone,
}

/// Record that `s`'s bytes `0..to` are durable (with what else of `s` changed: its total,
/// its parts), by a compare-and-set from the count `s` has.
pub(crate) async fn commit(app: &App, s: &mut Session, to: u64) -> Result<Committed, Refusal> {
    let before = (s.received, s.touched_at);
    (s.received, s.touched_at) = (to, now());
    match app.sessions.advance(s, before.0).await {
        Ok(Advanced::Done) => Ok(Committed::Done),
        Ok(Advanced::Lost { committed }) => {
            tracing::warn!(session = %s.id, committed, "another writer moved the session");
            s.received = before.0;
            refresh(app, s).await?;
            Ok(Committed::Lost(committed))
        }
        Ok(Advanced::Gone) => {
            // Another node ended it: this one forgets it too.
            let _ = app.sessions.remove(&s.id).await;
            Ok(Committed::Gone)
        }
        Err(e) => {
            (s.received, s.touched_at) = before;
            Err(store_refusal(&e))
        }
    }
}

/// Sweep the sessions that heard nothing for their directory's timeout, with their temporary
/// files, and forget the sessions closed long ago. A session serving a packet is alive.
pub async fn sweep(app: &App) {
    let at = now();
    let shortest = app
        .config
        .directories
        .iter()
        .map(|d| d.session_timeout)
        .min();
    if let Some(timeout) = shortest {
        let timeout = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        if let Err(e) = app
            .sessions
            .adopt_untouched(at.saturating_sub(timeout))
            .await
        {
            tracing::warn!(error = %e, "cannot read the sessions nobody touched");
        }
    }
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
    let placed = whole && keep;
    if placed {
        place(app, dir, s).await?;
    } else {
        tracing::info!(session = %s.id, "session closed before its last fragment: the partial upload is deleted");
    }
    app.sessions
        .close(s, now())
        .await
        .map_err(|e| store_refusal(&e))?;
    leftovers(app, s, placed).await;
    Ok(Ack::ok())
}

/// Put a whole upload at its name (file or object). Someone else's file there (and no
/// overwriting) ends the session: it can never be placed.
pub(crate) async fn place(app: &App, dir: &UploadDir, s: &mut Session) -> Result<(), Refusal> {
    let done = match &s.target {
        Target::File { temp, destination } => {
            file::finish(temp.clone(), destination.clone(), dir.allow_overwrite).await
        }
        Target::Object(_) => object::finish(app, s, dir.allow_overwrite).await,
    };
    if let Err(refusal) = done {
        if refusal.status == StatusCode::FORBIDDEN {
            end(app, s).await?;
        }
        return Err(refusal);
    }
    tracing::info!(session = %s.id, path = s.target.destination_text(), bytes = s.received, "upload closed");
    Ok(())
}

/// Whether another packet closed session `id` for this asker, lately (see
/// [`Sessions::close`](crate::sessions::Sessions::close)).
async fn was_closed(app: &App, id: &str, asker: &Asker<'_>) -> Result<bool, Refusal> {
    app.sessions
        .was_closed(id, asker.url_path, asker.user)
        .await
        .map_err(|e| store_refusal(&e))
}

pub(crate) fn store_refusal(e: &crate::Error) -> Refusal {
    Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, Code::FAIL).because(e.to_string())
}

/// Forget a session and delete what is left of it.
pub(crate) async fn end(app: &App, s: &Session) -> Result<(), Refusal> {
    app.sessions
        .remove(&s.id)
        .await
        .map_err(|e| store_refusal(&e))?;
    discard(app, s).await;
    Ok(())
}

/// Delete what is left of a session that was not placed: its temporary file, or its
/// multipart upload (aborted) and tail; and its reply.
async fn discard(app: &App, s: &Session) {
    leftovers(app, s, false).await;
}

/// Delete what is left of a session, `placed` at its name or not.
pub(crate) async fn leftovers(app: &App, s: &Session, placed: bool) {
    let reply = notify::reply_path(&app.config.state_dir(), &s.key());
    match &s.target {
        Target::File { temp, .. } => file::delete(vec![temp.clone(), reply]).await,
        Target::Object(o) => {
            file::delete(vec![reply]).await;
            match &app.objects {
                Some(objects) if placed => objects.spool.forget(&s.key()).await,
                Some(objects) => objects.abort(&s.key(), o).await,
                None => {}
            }
        }
    }
}
