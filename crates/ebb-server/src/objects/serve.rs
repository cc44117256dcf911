//! `GET` and `HEAD` of an object (a session's reply, from any node), with one byte range, as
//! a resuming client asks for it.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use object_store::path::Path as Key;
use object_store::{GetOptions, GetRange, ObjectStore};

use super::Objects;

impl Objects {
    /// Answer `method` for the object at `key`, honouring a `Range: bytes=` of one range.
    pub async fn serve(&self, key: &str, method: &Method, headers: &HeaderMap) -> Response {
        let range = match headers.get(header::RANGE).map(range) {
            None => None,
            Some(Some(r)) => Some(r),
            Some(None) => return StatusCode::RANGE_NOT_SATISFIABLE.into_response(),
        };
        let options = GetOptions {
            range: range.clone(),
            head: method == Method::HEAD,
            ..GetOptions::default()
        };
        let got = match self.bucket.get_opts(&Key::from(key), options).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => {
                return StatusCode::NOT_FOUND.into_response();
            }
            // The object is there, the range is not in it.
            Err(_) if range.is_some() && self.exists(key).await.unwrap_or(false) => {
                return StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            }
            Err(e) => {
                tracing::warn!(key, error = %e, "cannot read an object");
                return StatusCode::BAD_GATEWAY.into_response();
            }
        };
        let (size, span) = (got.meta.size, got.range.clone());
        let mut response = if method == Method::HEAD {
            Response::new(Body::empty())
        } else {
            Response::new(Body::from_stream(got.into_stream()))
        };
        let h = response.headers_mut();
        let length = if method == Method::HEAD && range.is_none() {
            size
        } else {
            span.end - span.start
        };
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        if range.is_some() {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            let value = format!("bytes {}-{}/{size}", span.start, span.end.saturating_sub(1));
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
        }
        response
    }
}

/// One range of a `Range` header (`bytes=a-b`, `bytes=a-`, `bytes=-n`); `None`: not one
/// this server serves.
fn range(value: &HeaderValue) -> Option<GetRange> {
    let spec = value.to_str().ok()?.strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    match (first.parse::<u64>().ok(), last.parse::<u64>().ok()) {
        (Some(a), Some(b)) if a <= b => Some(GetRange::Bounded(a..b + 1)),
        (Some(a), None) if last.is_empty() => Some(GetRange::Offset(a)),
        (None, Some(n)) if first.is_empty() && n > 0 => Some(GetRange::Suffix(n)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_range_of_each_form_and_nothing_else() {
        let r = |s: &str| range(&HeaderValue::from_str(s).unwrap());
        assert_eq!(r("bytes=0-9"), Some(GetRange::Bounded(0..10)));
        assert_eq!(r("bytes=5-"), Some(GetRange::Offset(5)));
        assert_eq!(r("bytes=-3"), Some(GetRange::Suffix(3)));
        for bad in [
            "bytes=9-0",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=-0",
            "bytes=a-b",
        ] {
            assert_eq!(r(bad), None, "{bad}");
        }
    }
}
