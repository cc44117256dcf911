use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn fragment(range: &str, length: &str) -> Result<Packet, Refusal> {
    read(&headers(&[
        ("BITS-Packet-Type", "Fragment"),
        ("BITS-Session-Id", "{A}"),
        ("Content-Range", range),
        ("Content-Length", length),
    ]))
}

#[test]
fn packet_names_are_read_in_any_case() {
    for name in ["Ping", "PING", "ping"] {
        assert_eq!(
            read(&headers(&[("BITS-Packet-Type", name)])),
            Ok(Packet::Ping)
        );
    }
    let close = read(&headers(&[
        ("BITS-Packet-Type", "CLOSE-SESSION"),
        ("BITS-Session-Id", "{S}"),
    ]));
    assert_eq!(
        close,
        Ok(Packet::CloseSession {
            session: "{S}".into()
        })
    );
}

#[test]
fn protocols_are_separated_by_spaces_or_commas() {
    for offered in [
        PROTOCOL.to_owned(),
        format!("{{0}} {}", PROTOCOL.to_uppercase()),
        format!("{{0}},{PROTOCOL}"),
        format!("{{0}}, {PROTOCOL}"),
    ] {
        let p = read(&headers(&[
            ("BITS-Packet-Type", "Create-Session"),
            ("BITS-Supported-Protocols", &offered),
        ]));
        assert_eq!(p, Ok(Packet::CreateSession), "{offered}");
    }
    let many = vec![PROTOCOL; 101].join(" ");
    let p = read(&headers(&[
        ("BITS-Packet-Type", "Create-Session"),
        ("BITS-Supported-Protocols", &many),
    ]));
    assert!(p.is_err());
}

#[test]
fn content_ranges_are_read_strictly() {
    assert_eq!(
        fragment("bytes 0-4891/4892", "4892"),
        Ok(Packet::Fragment {
            session: "{A}".into(),
            range: FragmentRange {
                first: 0,
                last: 4891,
                total: 4892
            }
        })
    );
    for bad in [
        "bytes 1-0/5",
        "bytes 0-5/5",
        "bytes 0-4",
        "0-4/5",
        "bytes +0-4/5",
        "bytes 0-4/5/6",
        "bytes 0-18446744073709551616/18446744073709551617",
        "bytes */5",
    ] {
        assert!(fragment(bad, "5").is_err(), "{bad}");
    }
    assert!(fragment("bytes 0-4/5", "4").is_err(), "length of the range");
}

#[test]
fn an_overlong_session_id_is_no_session_and_a_long_header_is_refused() {
    let long = "x".repeat(101);
    let r = read(&headers(&[
        ("BITS-Packet-Type", "Cancel-Session"),
        ("BITS-Session-Id", &long),
    ]))
    .unwrap_err();
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    let huge = "y".repeat(MAX_HEADER + 1);
    let r = read(&headers(&[("BITS-Packet-Type", "Ping"), ("X-Big", &huge)])).unwrap_err();
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

/// Whatever the header values, reading never panics, and a Fragment it accepts has a range
/// whose length is the Content-Length.
#[test]
fn any_header_values_are_read_without_panic() {
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet = b"bytes 0123456789-/*,{} \tPINGFragment";
    for _ in 0..20_000 {
        let len = (next() % 24) as usize;
        let range: String = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize] as char)
            .collect();
        let length = (next() % 50).to_string();
        if let Ok(Packet::Fragment { range: r, .. }) = fragment(&range, &length) {
            assert_eq!(r.len().to_string(), length, "{range}");
            assert!(r.first <= r.last && r.last < r.total);
        }
    }
}

/// Whatever a peer sends, the reader answers a packet or a refusal, never a panic; and every
/// well-formed fragment range reads back as written.
mod properties {
    use proptest::prelude::*;

    use super::*;

    const NAMES: [&str; 8] = [
        "BITS-Packet-Type",
        "BITS-Session-Id",
        "Content-Range",
        "Content-Length",
        "Content-Name",
        "BITS-Supported-Protocols",
        "Content-Encoding",
        "X-Other",
    ];

    fn any_headers() -> impl Strategy<Value = HeaderMap> {
        proptest::collection::vec(
            (
                proptest::sample::select(NAMES.to_vec()),
                prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..80),
                    "(Ping|Fragment|Create-Session|Close-Session|bytes [0-9]{1,20}-[0-9]{1,20}/[0-9*]{1,20}|[0-9]{1,25}| ?\\{[A-F0-9-]{0,40}\\}?)"
                        .prop_map(String::into_bytes),
                ],
            ),
            0..8,
        )
        .prop_map(|pairs| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                if let Ok(v) = HeaderValue::from_bytes(&v) {
                    h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), v);
                }
            }
            h
        })
    }

    proptest! {
        #[test]
        fn any_headers_are_read_without_a_panic(h in any_headers()) {
            let _ = read(&h);
        }

        #[test]
        fn fragment_ranges_read_back(first in 0u64..1 << 50, len in 1u64..1 << 30, extra in 0u64..1 << 30) {
            let last = first + len - 1;
            let total = last + 1 + extra;
            let got = fragment(&format!("bytes {first}-{last}/{total}"), &len.to_string());
            prop_assert_eq!(
                got,
                Ok(Packet::Fragment {
                    session: "{A}".into(),
                    range: FragmentRange { first, last, total },
                })
            );
            // A length that disagrees with the range is refused.
            let wrong = fragment(&format!("bytes {first}-{last}/{total}"), &(len + 1).to_string());
            prop_assert!(wrong.is_err());
        }
    }
}
