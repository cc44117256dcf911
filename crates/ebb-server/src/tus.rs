//! tus 1.0 (<https://tus.io/protocols/resumable-upload>), the open resumable-upload protocol,
//! beside BITS on every directory: core, creation, termination and checksum (SHA-256). A tus
//! upload is a session like a BITS one (same store, same targets, same limits, the same rule
//! that bytes are durable and counted before they are acknowledged); it lives at
//! `<prefix>.tus/<id>`, a hidden segment no file URL reaches, and is placed at its name when
//! its last byte is in.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;

use crate::App;
use crate::ack::Refusal;
use crate::config::UploadDir;
use crate::packet::FragmentRange;
use crate::sessions::{Open, Session, id_of_key};
use crate::upload::body::NewBytes;
use crate::upload::{self, Committed};

const VERSION: &str = "1.0.0";
const EXTENSIONS: &str = "creation,termination,checksum";
/// Where a directory's tus uploads live, under its prefix.
const UPLOADS: &str = ".tus/";
const OFFSET_TYPE: &str = "application/offset+octet-stream";

/// Whether a request is tus's: any `OPTIONS`, a `POST` that says `Tus-Resumable`, and what
/// goes to `<prefix>.tus/`.
pub fn is_tus(dir: &UploadDir, method: &Method, path: &str, headers: &HeaderMap) -> bool {
    dir.tus
        && (method == Method::OPTIONS
            || (method == Method::POST && headers.contains_key("tus-resumable"))
            || path.starts_with(&format!("{}{UPLOADS}", dir.prefix)))
}

/// Serve one tus request.
pub async fn serve(
    app: &App,
    dir: &UploadDir,
    (method, path): (&Method, &str),
    user: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let result = if method == Method::OPTIONS {
        Ok(options(dir))
    } else if headers.get("tus-resumable").and_then(|v| v.to_str().ok()) != Some(VERSION) {
        let mut r = answer(StatusCode::PRECONDITION_FAILED);
        r.headers_mut()
            .insert("tus-version", HeaderValue::from_static(VERSION));
        Ok(r)
    } else {
        let key = path
            .strip_prefix(&format!("{}{UPLOADS}", dir.prefix))
            .unwrap_or("");
        let asker = (dir, user.as_deref());
        match (method.as_str(), key) {
            ("POST", "") => create(app, dir, path, user.clone(), headers).await,
            ("HEAD", key) => head(app, asker, key).await,
            ("PATCH", key) => patch(app, asker, key, headers, body).await,
            ("DELETE", key) => delete(app, asker, key).await,
            _ => Ok(answer(StatusCode::METHOD_NOT_ALLOWED)),
        }
    };
    result.unwrap_or_else(|refusal| {
        tracing::info!(path, status = %refusal.status, why = %refusal.why, "tus request refused");
        // A session that is no more is a 404 to tus (BITS says it with a 500 and a code).
        let status = if refusal.code == Some(crate::ack::Code::SESSION_NOT_FOUND) {
            StatusCode::NOT_FOUND
        } else {
            refusal.status
        };
        answer(status)
    })
}

/// A bare answer of `status`, with `Tus-Resumable`.
fn answer(status: StatusCode) -> Response {
    let mut r = status.into_response();
    r.headers_mut()
        .insert("tus-resumable", HeaderValue::from_static(VERSION));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn with_offset(status: StatusCode, offset: u64) -> Response {
    let mut r = answer(status);
    r.headers_mut()
        .insert("upload-offset", HeaderValue::from(offset));
    r
}

fn options(dir: &UploadDir) -> Response {
    let mut r = answer(StatusCode::NO_CONTENT);
    let h = r.headers_mut();
    h.insert("tus-version", HeaderValue::from_static(VERSION));
    h.insert("tus-extension", HeaderValue::from_static(EXTENSIONS));
    h.insert("tus-checksum-algorithm", HeaderValue::from_static("sha256"));
    if let Some(max) = dir.max_upload_size {
        h.insert("tus-max-size", HeaderValue::from(max));
    }
    r
}

fn number(headers: &HeaderMap, name: &str) -> Result<Option<u64>, Refusal> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .ok_or_else(|| Refusal::bad("a number header that is no number").because(name))
        })
        .transpose()
}

/// The value of `key` in `Upload-Metadata` (`key base64,key base64`), decoded.
fn metadata(headers: &HeaderMap, key: &str) -> Option<String> {
    let text = headers.get("upload-metadata")?.to_str().ok()?;
    text.split(',').find_map(|pair| {
        let mut it = pair.trim().splitn(2, ' ');
        (it.next()? == key).then_some(())?;
        let value = base64::engine::general_purpose::STANDARD
            .decode(it.next().unwrap_or("").trim())
            .ok()?;
        String::from_utf8(value).ok()
    })
}

/// Creation: `POST <prefix><path>`, or `POST <prefix>` with a `filename` in the metadata.
async fn create(
    app: &App,
    dir: &UploadDir,
    path: &str,
    user: Option<String>,
    headers: &HeaderMap,
) -> Result<Response, Refusal> {
    if dir.notification.is_some() {
        return Err(Refusal::status(StatusCode::FORBIDDEN)
            .because("uploads here get a server application's reply: BITS only"));
    }
    let Some(length) = number(headers, "upload-length")? else {
        return Err(Refusal::bad(
            "no Upload-Length (deferred lengths are not taken)",
        ));
    };
    if dir.max_upload_size.is_some_and(|max| length > max) {
        return Err(Refusal::status(StatusCode::PAYLOAD_TOO_LARGE).because("over the size limit"));
    }
    let url_path = if path == dir.prefix {
        let name = metadata(headers, "filename")
            .ok_or_else(|| Refusal::bad("no file name: none in the URL or the metadata"))?;
        let encoded = percent_encoding::utf8_percent_encode(&name, SEGMENT);
        format!("{}{encoded}", dir.prefix)
    } else {
        path.to_owned()
    };
    let s = upload::open_session(app, dir, &url_path, user, Some(length)).await?;
    let location = format!("{}{UPLOADS}{}", dir.prefix, s.key());
    if length == 0 {
        let open = upload::find(app, &s.id).await?;
        done(app, dir, &mut *open.lock().await).await?;
    }
    let mut r = answer(StatusCode::CREATED);
    let location = HeaderValue::from_str(&location)
        .map_err(|_| Refusal::bad("a location that is no header"))?;
    r.headers_mut().insert(header::LOCATION, location);
    Ok(r)
}

/// Every byte but the unreserved ones is encoded: the name is one segment.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Who asks, through which directory.
type Asker<'a> = (&'a UploadDir, Option<&'a str>);

/// The open session of `key`, if it is the asker's; `Err(Some(total))` if it was closed
/// (placed whole) lately, `Err(None)` if there is none of theirs.
async fn session(app: &App, (dir, user): Asker<'_>, key: &str) -> Result<Open, Option<u64>> {
    let id = id_of_key(key).ok_or(None)?;
    // The session's own directory (not one whose prefix merely contains its URL), and user.
    let mine = |path: &str, who: Option<&str>| {
        app.config
            .directory(path)
            .is_some_and(|d| d.prefix == dir.prefix)
            && who == user
    };
    if let Ok(Some((who, path))) = app.sessions.owner(key).await {
        return match app.sessions.find(&id).await {
            Ok(Some(open)) if mine(&path, who.as_deref()) => Ok(open),
            _ => Err(None),
        };
    }
    match app.sessions.closed(&id).await {
        Ok(Some(c)) if mine(&c.url_path, c.user.as_deref()) => Err(c.total),
        _ => Err(None),
    }
}

async fn head(app: &App, asker: Asker<'_>, key: &str) -> Result<Response, Refusal> {
    let open = match session(app, asker, key).await {
        Ok(open) => open,
        Err(Some(total)) => return Ok(lengths(total, total)),
        Err(None) => return Ok(answer(StatusCode::NOT_FOUND)),
    };
    let mut s = open.lock().await;
    upload::refresh(app, &mut s).await?;
    Ok(lengths(s.held(), s.total.unwrap_or(0)))
}

fn lengths(offset: u64, total: u64) -> Response {
    let mut r = with_offset(StatusCode::OK, offset);
    r.headers_mut()
        .insert("upload-length", HeaderValue::from(total));
    r
}

async fn patch(
    app: &App,
    asker: Asker<'_>,
    key: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if kind != Some(OFFSET_TYPE) {
        return Ok(answer(StatusCode::UNSUPPORTED_MEDIA_TYPE));
    }
    let offset =
        number(headers, "upload-offset")?.ok_or_else(|| Refusal::bad("no Upload-Offset"))?;
    let len = number(headers, header::CONTENT_LENGTH.as_str())?
        .ok_or_else(|| Refusal::status(StatusCode::LENGTH_REQUIRED))?;
    let checksum = checksum(headers)?;
    let open = match session(app, asker, key).await {
        Ok(open) => open,
        // Placed whole already: the client lost the answer to its last PATCH.
        Err(Some(total)) if offset + len == total => {
            return Ok(with_offset(StatusCode::NO_CONTENT, total));
        }
        Err(Some(total)) => return Ok(with_offset(StatusCode::CONFLICT, total)),
        Err(None) => return Ok(answer(StatusCode::NOT_FOUND)),
    };
    let mut s = open.lock().await;
    s.touched_at = upload::now();
    if offset != s.held() {
        upload::refresh(app, &mut s).await?;
    }
    if offset != s.held() {
        return Ok(answer(StatusCode::CONFLICT));
    }
    let total = s.total.unwrap_or(0);
    if offset + len > total {
        return Err(Refusal::bad("the body goes past Upload-Length"));
    }
    if len > 0 {
        take(app, asker.0, &mut s, (offset, len, total), (body, checksum)).await?;
    }
    if s.received == total {
        done(app, asker.0, &mut s).await?;
        return Ok(with_offset(StatusCode::NO_CONTENT, total));
    }
    Ok(with_offset(StatusCode::NO_CONTENT, s.held()))
}

/// Take a PATCH's `len` bytes at `offset` as a fragment of the upload.
async fn take(
    app: &App,
    dir: &UploadDir,
    s: &mut Session,
    (offset, len, total): (u64, u64, u64),
    (body, checksum): (Body, Option<[u8; 32]>),
) -> Result<(), Refusal> {
    let range = FragmentRange {
        first: offset,
        last: offset + len - 1,
        total,
    };
    upload::check_fragment(app, dir, s, range).await?;
    let mut body = NewBytes::new(body, 0, len);
    if let Some(sha) = checksum {
        body = body.with_sha256(sha);
    }
    match upload::take(app, s, range, body).await? {
        Committed::Done => Ok(()),
        Committed::Lost(_) => {
            Err(Refusal::status(StatusCode::CONFLICT).because("another writer moved the upload"))
        }
        Committed::Gone => Err(Refusal::session_not_found().because("the upload ended meanwhile")),
    }
}

/// `Upload-Checksum: sha256 <base64>`; another algorithm is refused.
fn checksum(headers: &HeaderMap) -> Result<Option<[u8; 32]>, Refusal> {
    let Some(value) = headers.get("upload-checksum") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| Refusal::bad("a checksum that is no text"))?;
    let (algorithm, digest) = text
        .trim()
        .split_once(' ')
        .ok_or_else(|| Refusal::bad("a checksum without its algorithm"))?;
    if algorithm != "sha256" {
        return Err(Refusal::bad("a checksum algorithm other than sha256"));
    }
    base64::engine::general_purpose::STANDARD
        .decode(digest.trim())
        .ok()
        .and_then(|d| <[u8; 32]>::try_from(d).ok())
        .map(Some)
        .ok_or_else(|| Refusal::bad("a SHA-256 that is not 32 bytes of base64"))
}

/// The last byte is in: the upload goes to its name, and the session is closed.
async fn done(app: &App, dir: &UploadDir, s: &mut Session) -> Result<(), Refusal> {
    upload::place(app, dir, s).await?;
    app.sessions
        .close(s, upload::now())
        .await
        .map_err(|e| upload::store_refusal(&e))?;
    upload::leftovers(app, s, true).await;
    Ok(())
}

/// Termination: the upload and what it holds are deleted.
async fn delete(app: &App, asker: Asker<'_>, key: &str) -> Result<Response, Refusal> {
    let Ok(open) = session(app, asker, key).await else {
        return Ok(answer(StatusCode::NOT_FOUND));
    };
    let s = open.lock().await;
    upload::end(app, &s).await?;
    Ok(answer(StatusCode::NO_CONTENT))
}
