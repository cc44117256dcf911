//! Downloads: `GET` and `HEAD` of the files under a directory's root, with ranges and
//! `Last-Modified` (what a resuming client needs), through tower-http's `ServeFile`. Paths are
//! checked as uploads' are: nothing outside the root, no links, nothing hidden (which keeps the
//! server's own files, sessions' temporary files among them, out of reach).

use axum::body::Body;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use crate::config::UploadDir;
use crate::{App, notify, paths};

pub async fn serve(dir: &UploadDir, url_path: &str, parts: Parts, body: Body) -> Response {
    let Some(root) = dir.root.clone() else {
        // Object storage: its objects are served by the store itself.
        return StatusCode::NOT_FOUND.into_response();
    };
    let file = match paths::relative(&dir.prefix, url_path) {
        Ok(relative) => {
            tokio::task::spawn_blocking(move || {
                paths::under_root(&root, &relative).map(|f| f.is_file().then_some(f))
            })
            .await
        }
        Err(e) => Ok(Err(e)),
    };
    let Ok(Ok(Some(file))) = file else {
        return StatusCode::NOT_FOUND.into_response();
    };
    send(&file, parts, body).await
}

async fn send(file: &std::path::Path, parts: Parts, body: Body) -> Response {
    let request = axum::http::Request::from_parts(parts, body);
    match ServeFile::new(file).oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    }
}

/// The key of a reply URL as this server gives them (`.../BITS-Sessions/Replies/<key>/
/// responsefile.bin`, resolved against the upload's URL), if `url_path` is one.
pub fn reply_key(url_path: &str) -> Option<&str> {
    let rest = url_path.strip_suffix("/responsefile.bin")?;
    let (head, key) = rest.rsplit_once('/')?;
    let valid = !key.is_empty() && key.len() <= 64 && key.bytes().all(|b| b.is_ascii_hexdigit());
    (head.ends_with("/BITS-Sessions/Replies") && valid).then_some(key)
}

/// A session's reply, to the user who made the session, through the directory of its URL,
/// until Close-Session.
pub async fn reply(
    app: &App,
    (url_path, key): (&str, &str),
    user: Option<&str>,
    parts: Parts,
    body: Body,
) -> Response {
    let owner = match app.sessions.owner(key).await {
        Ok(owner) => owner,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a reply's session");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let mine = owner.is_some_and(|(owner, upload)| {
        let base = upload.rsplit_once('/').map_or("", |(dir, _)| dir);
        owner.as_deref() == user
            && url_path == format!("{base}/BITS-Sessions/Replies/{key}/responsefile.bin")
    });
    if !mine {
        return StatusCode::NOT_FOUND.into_response();
    }
    if let Some(objects) = &app.objects {
        let reply = objects.staged(key, "reply");
        return objects.serve(&reply, &parts.method, &parts.headers).await;
    }
    send(
        &notify::reply_path(&app.config.state_dir(), key),
        parts,
        body,
    )
    .await
}
