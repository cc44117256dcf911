//! What response headers say: ranges, lengths, encodings, validators and digests.

use reqwest::header::{
    CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, ETAG, HeaderMap, LAST_MODIFIED,
};

use base64::Engine as _;

use crate::model::{Sha256Digest, Validators};

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

/// Validators usable with `If-Range` (only a strong ETag, else Last-Modified), and the server's
/// digest of the whole file. `whole_body`: the body is the whole file, unencoded (a 200), so a
/// `Content-Digest` is the file's digest too.
pub(super) fn validators_of(headers: &HeaderMap, whole_body: bool) -> Validators {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    Validators {
        etag: text(ETAG).filter(|e| !e.starts_with("W/")),
        last_modified: text(LAST_MODIFIED),
        sha256: server_sha256(headers, whole_body),
    }
}

/// The server's SHA-256 of the whole file: `Repr-Digest` (RFC 9530), `Content-Digest` when the
/// body is the whole file, else the older `Digest` (RFC 3230). Other algorithms are not read.
fn server_sha256(headers: &HeaderMap, whole_body: bool) -> Option<Sha256Digest> {
    let values = |name: &'static str| {
        headers
            .get_all(name)
            .into_iter()
            .filter_map(|v| v.to_str().ok())
    };
    let mut found = values("repr-digest").find_map(structured_sha256);
    if found.is_none() && whole_body {
        found = values("content-digest").find_map(structured_sha256);
    }
    found.or_else(|| values("digest").find_map(legacy_sha256))
}

/// `sha-256=:BASE64:` among the members of an RFC 9530 dictionary.
fn structured_sha256(value: &str) -> Option<Sha256Digest> {
    value.split(',').find_map(|member| {
        let (key, rest) = member.trim().split_once('=')?;
        if !key.trim().eq_ignore_ascii_case("sha-256") {
            return None;
        }
        let bytes = rest.trim().strip_prefix(':')?.split(':').next()?;
        decode(bytes)
    })
}

/// `SHA-256=BASE64` among the instance digests of RFC 3230.
fn legacy_sha256(value: &str) -> Option<Sha256Digest> {
    value.split(',').find_map(|member| {
        let (key, b64) = member.trim().split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("sha-256")
            .then(|| decode(b64.trim()))
            .flatten()
    })
}

fn decode(b64: &str) -> Option<Sha256Digest> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    bytes.try_into().ok().map(Sha256Digest)
}

/// Did the server hand us a different representation than the one we have bytes of?
pub(super) fn changed(old: &Validators, new: &Validators) -> bool {
    // A digest tells even when a server keeps its ETag for new content of the same size.
    if let (Some(a), Some(b)) = (old.sha256, new.sha256)
        && a != b
    {
        return true;
    }
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
    use crate::transfer::http::test_headers as headers;

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
    fn server_digests() {
        // sha-256 of "abc".
        let abc = "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=";
        let want: Sha256Digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
            .parse()
            .unwrap();
        let repr = format!("sha-512=:AAAA:, sha-256=:{abc}:");
        let h = headers(&[(
            reqwest::header::HeaderName::from_static("repr-digest"),
            &repr,
        )]);
        assert_eq!(validators_of(&h, false).sha256, Some(want));
        let content = format!("sha-256=:{abc}:");
        let h = headers(&[(
            reqwest::header::HeaderName::from_static("content-digest"),
            &content,
        )]);
        assert_eq!(validators_of(&h, true).sha256, Some(want));
        // The digest of a partial body is not the file's.
        assert_eq!(validators_of(&h, false).sha256, None);
        let legacy = format!("MD5=xyz, SHA-256={abc}");
        let h = headers(&[(reqwest::header::HeaderName::from_static("digest"), &legacy)]);
        assert_eq!(validators_of(&h, false).sha256, Some(want));
        let bad = headers(&[(
            reqwest::header::HeaderName::from_static("repr-digest"),
            "sha-256=:AAAA:",
        )]);
        assert_eq!(validators_of(&bad, true).sha256, None);
        let mut old = validators_of(&h, false);
        old.etag = Some("\"same\"".into());
        let mut new = old.clone();
        new.sha256 = Some(Sha256Digest([0; 32]));
        assert!(changed(&old, &new), "same ETag, another digest");
    }

    #[test]
    fn weak_etags_are_not_validators() {
        let v = validators_of(
            &headers(&[
                (ETAG, "W/\"x\""),
                (LAST_MODIFIED, "Tue, 24 Nov 2026 00:00:00 GMT"),
            ]),
            true,
        );
        assert_eq!(v.etag, None);
        assert_eq!(v.if_range(), Some("Tue, 24 Nov 2026 00:00:00 GMT"));
    }
}
