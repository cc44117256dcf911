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
use crate::paths;

pub async fn serve(dir: &UploadDir, url_path: &str, parts: Parts, body: Body) -> Response {
    let file = match paths::relative(&dir.prefix, url_path) {
        Ok(relative) => {
            let root = dir.root.clone();
            tokio::task::spawn_blocking(move || paths::under_root(&root, &relative)).await
        }
        Err(e) => Ok(Err(e)),
    };
    let file = match file {
        Ok(Ok(file)) if file.is_file() => file,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let request = axum::http::Request::from_parts(parts, body);
    match ServeFile::new(file).oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    }
}
