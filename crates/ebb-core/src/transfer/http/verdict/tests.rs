use reqwest::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, ETAG};

use super::*;
use crate::transfer::http::test_headers as headers;

fn url() -> Url {
    Url::parse("http://127.0.0.1:9/f").unwrap()
}

fn file() -> JobFile {
    JobFile::new(
        crate::model::JobId::new(),
        0,
        crate::model::NewFile::new("http://127.0.0.1:9/f", "/tmp/f"),
    )
}

fn asked(url: &Url, start: u64, whole: bool) -> Asked<'_> {
    Asked {
        url,
        seg: Segment { start, end: None },
        whole,
        sent_if_range: false,
        hops: 0,
        may_authenticate: false,
        remote_size: None,
    }
}

fn code(v: &Verdict) -> Option<ErrorCode> {
    match v {
        Verdict::Fail(f) => Some(f.error.code),
        _ => None,
    }
}

#[test]
fn a_200_reads_the_whole_file_and_starts_over_if_bytes_were_kept() {
    let (origin, props) = (url(), JobProperties::default());
    let h = headers(&[(CONTENT_LENGTH, "10"), (ETAG, "\"v1\"")]);
    let mut fl = file();
    match classify(StatusCode::OK, &h, &asked(&origin, 0, true), &fl, &props) {
        Verdict::Whole {
            validators,
            length,
            restart_first,
        } => {
            assert_eq!(length, Some(10));
            assert_eq!(validators.etag.as_deref(), Some("\"v1\""));
            assert!(!restart_first);
        }
        v => panic!("{v:?}"),
    }
    fl.bytes_transferred = 4;
    let v = classify(StatusCode::OK, &h, &asked(&origin, 4, true), &fl, &props);
    assert!(
        matches!(
            v,
            Verdict::Whole {
                restart_first: true,
                ..
            }
        ),
        "{v:?}"
    );
}

#[test]
fn a_200_to_a_byte_range_is_missing_range_support_or_a_changed_file() {
    let (origin, props) = (url(), JobProperties::default());
    let h = headers(&[(CONTENT_LENGTH, "10")]);
    let mut ask = asked(&origin, 0, false);
    let v = classify(StatusCode::OK, &h, &ask, &file(), &props);
    assert_eq!(code(&v), Some(ErrorCode::BG_E_INSUFFICIENT_RANGE_SUPPORT));
    ask.sent_if_range = true;
    let v = classify(StatusCode::OK, &h, &ask, &file(), &props);
    assert!(
        matches!(
            v,
            Verdict::Restart {
                distrust_ranges: false
            }
        ),
        "{v:?}"
    );
}

#[test]
fn a_206_must_say_what_was_asked() {
    let (origin, props) = (url(), JobProperties::default());
    let honest = headers(&[(CONTENT_RANGE, "bytes 5-9/10"), (CONTENT_LENGTH, "5")]);
    let v = classify(
        StatusCode::PARTIAL_CONTENT,
        &honest,
        &asked(&origin, 5, true),
        &file(),
        &props,
    );
    assert!(
        matches!(v, Verdict::Range { range, .. } if range.start == 5 && range.end_exclusive == 10),
        "{v:?}"
    );
    // Another start, a length that disagrees, or a compressed body: not what was asked.
    for lie in [
        headers(&[(CONTENT_RANGE, "bytes 0-9/10")]),
        headers(&[(CONTENT_RANGE, "bytes 5-9/10"), (CONTENT_LENGTH, "3")]),
        headers(&[(CONTENT_RANGE, "bytes 5-9/10"), (CONTENT_ENCODING, "gzip")]),
        headers(&[]),
    ] {
        let v = classify(
            StatusCode::PARTIAL_CONTENT,
            &lie,
            &asked(&origin, 5, true),
            &file(),
            &props,
        );
        assert!(
            matches!(
                v,
                Verdict::Restart {
                    distrust_ranges: true
                }
            ),
            "{v:?}"
        );
        let v = classify(
            StatusCode::PARTIAL_CONTENT,
            &lie,
            &asked(&origin, 5, false),
            &file(),
            &props,
        );
        assert_eq!(code(&v), Some(ErrorCode::BG_E_INVALID_SERVER_RESPONSE));
    }
}

#[test]
fn a_206_of_a_changed_file_starts_it_over() {
    let (origin, props) = (url(), JobProperties::default());
    let mut fl = file();
    fl.bytes_transferred = 5;
    fl.validators.etag = Some("\"v1\"".into());
    let h = headers(&[(CONTENT_RANGE, "bytes 5-9/10"), (ETAG, "\"v2\"")]);
    let v = classify(
        StatusCode::PARTIAL_CONTENT,
        &h,
        &asked(&origin, 5, true),
        &fl,
        &props,
    );
    assert!(
        matches!(
            v,
            Verdict::Restart {
                distrust_ranges: false
            }
        ),
        "{v:?}"
    );
}

#[test]
fn a_206_names_the_remote_size_of_a_byte_range_file_once_and_in_bounds() {
    let (origin, props) = (url(), JobProperties::default());
    let mut fl = file();
    fl.ranges = vec![crate::model::ByteRange {
        offset: 0,
        length: Some(5),
    }];
    let mut ask = asked(&origin, 0, false);
    ask.seg.end = Some(5);
    let h = headers(&[(CONTENT_RANGE, "bytes 0-4/100")]);
    let v = classify(StatusCode::PARTIAL_CONTENT, &h, &ask, &fl, &props);
    assert!(
        matches!(
            v,
            Verdict::Range {
                remote_size: Some(100),
                ..
            }
        ),
        "{v:?}"
    );
    ask.remote_size = Some(100);
    let v = classify(StatusCode::PARTIAL_CONTENT, &h, &ask, &fl, &props);
    assert!(
        matches!(
            v,
            Verdict::Range {
                remote_size: None,
                ..
            }
        ),
        "{v:?}"
    );
    // A range past the end of the remote file cannot be served.
    fl.ranges.push(crate::model::ByteRange {
        offset: 200,
        length: Some(5),
    });
    ask.remote_size = None;
    let v = classify(StatusCode::PARTIAL_CONTENT, &h, &ask, &fl, &props);
    assert_eq!(code(&v), Some(ErrorCode::BG_E_INVALID_RANGE));
}

#[test]
fn statuses_that_are_not_a_body() {
    let (origin, props) = (url(), JobProperties::default());
    let none = headers(&[]);
    let mut ask = asked(&origin, 0, true);
    let v = classify(
        StatusCode::RANGE_NOT_SATISFIABLE,
        &none,
        &ask,
        &file(),
        &props,
    );
    assert!(
        matches!(
            v,
            Verdict::Restart {
                distrust_ranges: false
            }
        ),
        "{v:?}"
    );
    let v = classify(StatusCode::UNAUTHORIZED, &none, &ask, &file(), &props);
    assert_eq!(code(&v), Some(ErrorCode::http(401)));
    ask.may_authenticate = true;
    let v = classify(StatusCode::UNAUTHORIZED, &none, &ask, &file(), &props);
    assert!(matches!(v, Verdict::Authenticate), "{v:?}");
    let v = classify(StatusCode::NO_CONTENT, &none, &ask, &file(), &props);
    assert_eq!(code(&v), Some(ErrorCode::BG_E_INVALID_SERVER_RESPONSE));
    let v = classify(StatusCode::NOT_FOUND, &none, &ask, &file(), &props);
    assert_eq!(code(&v), Some(ErrorCode::http(404)));
    let ranged = asked(&origin, 0, false);
    let v = classify(
        StatusCode::RANGE_NOT_SATISFIABLE,
        &none,
        &ranged,
        &file(),
        &props,
    );
    assert_eq!(code(&v), Some(ErrorCode::BG_E_INVALID_RANGE));
    let moved = headers(&[(LOCATION, "/g")]);
    let v = classify(StatusCode::FOUND, &moved, &ask, &file(), &props);
    assert!(
        matches!(&v, Verdict::Redirect(to) if to.path() == "/g"),
        "{v:?}"
    );
}

#[test]
fn https_to_http_redirect_needs_the_flag() {
    let from = Url::parse("https://a.example/x").unwrap();
    let h = headers(&[(LOCATION, "http://b.example/y")]);
    let mut props = JobProperties::default();
    assert!(redirect_target(302, &h, &from, &props, 0).is_err());
    props.security_flags = crate::model::SecurityFlags::new(0x800).unwrap();
    assert_eq!(
        redirect_target(302, &h, &from, &props, 0).unwrap().as_str(),
        "http://b.example/y"
    );
    let rel = headers(&[(LOCATION, "/z")]);
    assert_eq!(
        redirect_target(301, &rel, &from, &props, 0)
            .unwrap()
            .as_str(),
        "https://a.example/z"
    );
    assert!(redirect_target(301, &rel, &from, &props, 10).is_err());
}
