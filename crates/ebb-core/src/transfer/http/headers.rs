//! What response headers say: ranges, lengths, encodings and validators.

use reqwest::header::{
    CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, ETAG, HeaderMap, LAST_MODIFIED,
};

use crate::model::Validators;

/// The pieces of a `Content-Range: bytes a-b/total` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ContentRange {
    pub start: u64,
    pub end_exclusive: u64,
    pub total: Option<u64>,
}

pub(super) fn parse_content_range(headers: &HeaderMap) -> Option<ContentRange> {
    let text = headers.get(CONTENT_RANGE)?.to_str().ok()?.trim();
    let rest = text.strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    let (start, last): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    (last >= start && total.is_none_or(|t| last < t)).then_some(ContentRange {
        start,
        end_exclusive: last + 1,
        total,
    })
}

pub(super) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub(super) fn is_identity(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim().is_empty() || v.trim().eq_ignore_ascii_case("identity"))
}

/// Validators usable with `If-Range`: only a strong ETag, else Last-Modified.
pub(super) fn validators_of(headers: &HeaderMap) -> Validators {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    Validators {
        etag: text(ETAG).filter(|e| !e.starts_with("W/")),
        last_modified: text(LAST_MODIFIED),
    }
}

/// Did the server hand us a different representation than the one we have bytes of?
pub(super) fn changed(old: &Validators, new: &Validators) -> bool {
    match (&old.etag, &new.etag) {
        (Some(a), Some(b)) => a != b,
        _ => match (&old.last_modified, &new.last_modified) {
            (Some(a), Some(b)) => a != b,
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(reqwest::header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn content_range_parsing() {
        let h = headers(&[(CONTENT_RANGE, "bytes 100-199/1000")]);
        assert_eq!(
            parse_content_range(&h),
            Some(ContentRange {
                start: 100,
                end_exclusive: 200,
                total: Some(1000)
            })
        );
        assert!(parse_content_range(&headers(&[(CONTENT_RANGE, "bytes 5-4/10")])).is_none());
        assert!(parse_content_range(&headers(&[(CONTENT_RANGE, "bytes 0-10/10")])).is_none());
        assert!(parse_content_range(&headers(&[(CONTENT_RANGE, "bytes=0-1/10")])).is_none());
        assert_eq!(
            parse_content_range(&headers(&[(CONTENT_RANGE, "bytes 0-1/*")]))
                .unwrap()
                .total,
            None
        );
    }

    #[test]
    fn weak_etags_are_not_validators() {
        let v = validators_of(&headers(&[
            (ETAG, "W/\"x\""),
            (LAST_MODIFIED, "Tue, 24 Nov 2026 00:00:00 GMT"),
        ]));
        assert_eq!(v.etag, None);
        assert_eq!(v.if_range(), Some("Tue, 24 Nov 2026 00:00:00 GMT"));
    }
}
