//! Basic authentication, when a directory lists its users. A session belongs to the user who
//! created it: another user's packets do not reach it.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use crate::config::UploadDir;

/// The 401 to send when credentials are missing or wrong.
#[derive(Debug)]
pub struct Challenge;

impl IntoResponse for Challenge {
    fn into_response(self) -> Response {
        let mut r = StatusCode::UNAUTHORIZED.into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"ebb-server\", charset=\"UTF-8\""),
        );
        r
    }
}

/// Who is asking: `Ok(None)` where the directory asks nobody.
pub fn user(dir: &UploadDir, headers: &HeaderMap) -> Result<Option<String>, Challenge> {
    if dir.users.is_empty() {
        return Ok(None);
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    let known = given.as_deref().and_then(|pair| {
        let (name, password) = pair.split_once(':')?;
        dir.users
            .iter()
            .find(|u| u.name == name && same(&u.password, password))
            .map(|u| u.name.clone())
    });
    known.map(Some).ok_or(Challenge)
}

/// Compare in time that does not depend on where the strings differ.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
