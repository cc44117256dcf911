//! Reading a server's Ack ([MC-BUP] §2.2.2.2): pure, so that whatever a server sends becomes
//! either what the client acts on or a clear error, never a panic or a guess.
//!
//! Servers differ (see `UPLOADS.md` §1): IIS answers Create-Session with 200 where the spec says
//! 201, sends no `BITS-Session-Id` on a fragment's Ack, and names its error header
//! `BITS-Error-Code` where the spec says `BITS-Error`. The reader takes either, and falls back
//! to the HTTP status when there is no code.

use reqwest::header::HeaderMap;

use crate::error::{ErrorCode, ErrorContext, Status};
use crate::transfer::Failure;

/// The protocol's header names, as `http` spells them (lower case).
pub(super) mod names {
    pub const PACKET_TYPE: &str = "bits-packet-type";
    pub const SUPPORTED_PROTOCOLS: &str = "bits-supported-protocols";
    pub const PROTOCOL: &str = "bits-protocol";
    pub const SESSION_ID: &str = "bits-session-id";
    pub const RECEIVED: &str = "bits-received-content-range";
    pub const REPLY_URL: &str = "bits-reply-url";
    pub const HOST_ID: &str = "bits-host-id";
    pub const HOST_ID_FALLBACK: &str = "bits-host-id-fallback-timeout";
    pub const ERROR_CODE: &str = "bits-error-code";
    pub const ERROR: &str = "bits-error";
    pub const ERROR_CONTEXT: &str = "bits-error-context";
    pub const CONTENT_NAME: &str = "content-name";
}

/// "BITS 1.5 Upload Protocol", the only one there is.
pub(super) const PROTOCOL: &str = "{7df0354d-249b-430f-820d-3d2a9bef4931}";

/// The session-not-found code: the client starts over with Create-Session.
pub(super) const SESSION_NOT_FOUND: ErrorCode = ErrorCode::BG_E_SESSION_NOT_FOUND;
/// The upload is larger than the server takes.
pub(super) const TOO_LARGE: ErrorCode = ErrorCode::BG_E_TOO_LARGE;
/// No protocol GUID in common.
pub(super) const PROTOCOL_MISMATCH: ErrorCode = ErrorCode::BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH;

/// The longest session id, host id and reply URL taken from a server.
const MAX_VALUE: usize = 2200;

/// An answer to a packet, as far as the client reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Ack {
    pub status: u16,
    /// `BITS-Packet-Type: Ack` was there: the server speaks the BITS upload protocol.
    pub bits: bool,
    pub protocol: Option<String>,
    pub session_id: Option<String>,
    /// `BITS-Received-Content-Range`: the offset of the next byte the server wants.
    pub received: Option<u64>,
    pub reply_url: Option<String>,
    pub host_id: Option<String>,
    pub host_fallback_secs: Option<u64>,
    pub code: Option<ErrorCode>,
    pub context: Option<ErrorContext>,
}

impl Ack {
    /// Read an answer's headers; a header present but unreadable is an error naming it.
    pub(super) fn read(status: u16, headers: &HeaderMap) -> Result<Self, String> {
        let text = |name: &'static str| -> Result<Option<String>, String> {
            let Some(v) = headers.get(name) else {
                return Ok(None);
            };
            let s = v
                .to_str()
                .map_err(|_| format!("its {name} header is not text"))?
                .trim();
            if s.len() > MAX_VALUE {
                return Err(format!("its {name} header is {} bytes long", s.len()));
            }
            Ok(Some(s.to_owned()))
        };
        let number = |name: &'static str| -> Result<Option<u64>, String> {
            text(name)?
                .map(|s| {
                    s.parse::<u64>()
                        .map_err(|_| format!("its {name} header {s:?} is not a number"))
                })
                .transpose()
        };
        let bits = text(names::PACKET_TYPE)?.is_some_and(|t| t.eq_ignore_ascii_case("ack"));
        let code = match text(names::ERROR_CODE)?.or(text(names::ERROR)?) {
            Some(s) => Some(
                parse_hresult(&s).ok_or_else(|| format!("its error code {s:?} is not a number"))?,
            ),
            None => None,
        };
        let context = match text(names::ERROR_CONTEXT)? {
            Some(s) => Some(
                parse_context(&s)
                    .ok_or_else(|| format!("its error context {s:?} is not a number"))?,
            ),
            None => None,
        };
        Ok(Self {
            status,
            bits,
            protocol: text(names::PROTOCOL)?,
            session_id: text(names::SESSION_ID)?.filter(|s| !s.is_empty()),
            received: number(names::RECEIVED)?,
            reply_url: text(names::REPLY_URL)?.filter(|s| !s.is_empty()),
            host_id: text(names::HOST_ID)?.filter(|s| !s.is_empty()),
            host_fallback_secs: number(names::HOST_ID_FALLBACK)?,
            code,
            context,
        })
    }

    /// 200 or 201, and an Ack.
    pub(super) fn is_success(&self) -> bool {
        self.bits && matches!(self.status, 200 | 201)
    }

    /// The server lost the session (or never had it): start over with Create-Session.
    pub(super) fn session_lost(&self) -> bool {
        self.code == Some(SESSION_NOT_FOUND)
    }

    /// What a refusal means for the job: BITS's code (the server's, else the HTTP status's),
    /// the server application's context or the server's, and whether trying again may help.
    pub(super) fn failure(&self, url: &url::Url, packet: &str) -> Failure {
        let code = self.code.unwrap_or(ErrorCode::http(self.status));
        let context = match self.context {
            Some(ErrorContext::RemoteApplication) => ErrorContext::RemoteApplication,
            _ => ErrorContext::RemoteFile,
        };
        let hint = if self.bits {
            String::new()
        } else {
            "; it is no BITS upload server (its answer is no Ack: is BITS uploading enabled at \
             this URL?)"
                .to_owned()
        };
        Failure::new(
            classify(self.status, code),
            context,
            code,
            format!(
                "({url}: {packet} refused with HTTP status {}{hint})",
                self.status
            ),
        )
    }
}

/// Whether a refusal is worth trying again, as BITS decides: codes that say the request itself
/// is wrong never are; otherwise 408, 409, 429 and the 5xx but 501 and 505 are.
pub(super) fn classify(status: u16, code: ErrorCode) -> Status {
    let never = [
        TOO_LARGE,
        PROTOCOL_MISMATCH,
        ErrorCode::E_INVALIDARG,
        ErrorCode::E_ACCESSDENIED,
    ];
    if never.contains(&code) {
        return Status::Permanent;
    }
    if matches!(status, 408 | 409 | 429)
        || (500..600).contains(&status) && !matches!(status, 501 | 505)
    {
        Status::Transient
    } else {
        Status::Permanent
    }
}

/// `0x8020001F`, `8020001F` (eight hex digits) or a decimal number; an HRESULT is 32 bits.
fn parse_hresult(text: &str) -> Option<ErrorCode> {
    let t = text.trim();
    let value = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None if t.len() == 8 => u32::from_str_radix(t, 16).ok()?,
        None => t.parse::<u32>().ok()?,
    };
    Some(ErrorCode(value))
}

/// `0x5`, `5`, `0x7`: the contexts a server may name.
fn parse_context(text: &str) -> Option<ErrorContext> {
    let t = text.trim();
    let n = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None => t.parse().ok()?,
    };
    Some(match n {
        7 => ErrorContext::RemoteApplication,
        _ => ErrorContext::RemoteFile,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    /// What IIS sends (UPLOADS.md §1): 200 to Create-Session, upper-case braced session id,
    /// no session id on a fragment's Ack, a relative reply URL with backslashes.
    #[test]
    fn microsofts_acks() {
        let created = Ack::read(
            200,
            &headers(&[
                ("BITS-Packet-Type", b"Ack"),
                ("BITS-Protocol", b"{7df0354d-249b-430f-820d-3d2a9bef4931}"),
                ("BITS-Session-Id", b"{A0FF5911-A7D5-4B2A-94C2-6B3F3D5E6D2F}"),
                ("Accept-encoding", b"identity"),
            ]),
        )
        .unwrap();
        assert!(created.is_success());
        assert_eq!(created.protocol.as_deref(), Some(PROTOCOL));
        assert_eq!(
            created.session_id.as_deref(),
            Some("{A0FF5911-A7D5-4B2A-94C2-6B3F3D5E6D2F}")
        );
        let last = Ack::read(
            200,
            &headers(&[
                ("bits-packet-type", b"ACK"),
                ("BITS-Received-Content-Range", b"4892"),
                (
                    "BITS-Reply-URL",
                    b"BITS-Sessions\\Replies\\{GUID}\\responsefile.bin",
                ),
            ]),
        )
        .unwrap();
        assert!(last.is_success());
        assert_eq!(last.received, Some(4892));
        assert_eq!(last.session_id, None);
        assert!(last.reply_url.unwrap().starts_with("BITS-Sessions\\"));
    }

    #[test]
    fn errors_under_either_name() {
        let url = url::Url::parse("http://127.0.0.1/up/x").unwrap();
        for name in ["BITS-Error-Code", "BITS-Error"] {
            let ack = Ack::read(
                500,
                &headers(&[
                    ("BITS-Packet-Type", b"Ack"),
                    (name, b"0x8020001F"),
                    ("BITS-Error-Context", b"0x5"),
                ]),
            )
            .unwrap();
            assert!(ack.session_lost(), "{name}");
        }
        let app = Ack::read(
            500,
            &headers(&[
                ("BITS-Packet-Type", b"Ack"),
                ("BITS-Error-Code", b"0x80190194"),
                ("BITS-Error-Context", b"0x7"),
            ]),
        )
        .unwrap();
        let f = app.failure(&url, "Fragment");
        assert_eq!(f.error.context, ErrorContext::RemoteApplication);
        assert_eq!(f.error.code, ErrorCode::http(404));
        assert_eq!(f.status, Status::Transient);
        let too_large = Ack::read(
            500,
            &headers(&[("BITS-Packet-Type", b"Ack"), ("BITS-Error", b"0x80200020")]),
        )
        .unwrap();
        let f = too_large.failure(&url, "Fragment");
        assert_eq!((f.error.code, f.status), (TOO_LARGE, Status::Permanent));
        assert_eq!(f.error.context, ErrorContext::RemoteFile);
        // No code: the HTTP status's. No Ack: said plainly.
        let plain = Ack::read(405, &HeaderMap::new()).unwrap();
        let f = plain.failure(&url, "Create-Session");
        assert_eq!(f.error.code, ErrorCode::http(405));
        assert!(
            f.error.description.contains("no BITS upload server"),
            "{}",
            f.error.description
        );
        assert!(!plain.is_success());
        assert!(!Ack::read(200, &HeaderMap::new()).unwrap().is_success());
    }

    #[test]
    fn unreadable_values_are_named() {
        for (name, value) in [
            ("BITS-Received-Content-Range", &b"0-99"[..]),
            ("BITS-Received-Content-Range", b"-1"),
            ("BITS-Received-Content-Range", b"99999999999999999999"),
            ("BITS-Error-Code", b"0xZZ"),
            ("BITS-Error-Code", b"0x180200020"),
            ("BITS-Error-Context", b"five"),
            ("BITS-Host-Id-Fallback-Timeout", b"soon"),
            ("BITS-Session-Id", b"\xff\xfe"),
        ] {
            let err = Ack::read(200, &headers(&[(name, value)])).unwrap_err();
            assert!(
                err.to_lowercase().contains(&name.to_lowercase()) || err.contains("error"),
                "{name}: {err}"
            );
        }
        let long = vec![b'a'; MAX_VALUE + 1];
        assert!(Ack::read(200, &headers(&[("BITS-Reply-URL", &long)])).is_err());
    }

    #[test]
    fn codes_and_contexts() {
        assert_eq!(parse_hresult("0x8020001F"), Some(SESSION_NOT_FOUND));
        assert_eq!(parse_hresult("8020001f"), Some(SESSION_NOT_FOUND));
        assert_eq!(parse_hresult("80200020"), Some(TOO_LARGE));
        assert_eq!(parse_hresult("2149580831"), Some(SESSION_NOT_FOUND));
        assert_eq!(parse_hresult("0x"), None);
        assert_eq!(parse_context("0x7"), Some(ErrorContext::RemoteApplication));
        assert_eq!(parse_context("5"), Some(ErrorContext::RemoteFile));
        assert_eq!(classify(500, ErrorCode::http(500)), Status::Transient);
        assert_eq!(classify(501, ErrorCode::E_ACCESSDENIED), Status::Permanent);
        assert_eq!(classify(403, ErrorCode::E_ACCESSDENIED), Status::Permanent);
        assert_eq!(classify(409, ErrorCode::http(409)), Status::Transient);
        assert_eq!(classify(404, ErrorCode::http(404)), Status::Permanent);
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        const NAMES: [&str; 9] = [
            names::PACKET_TYPE,
            names::PROTOCOL,
            names::SESSION_ID,
            names::RECEIVED,
            names::REPLY_URL,
            names::HOST_ID,
            names::HOST_ID_FALLBACK,
            names::ERROR_CODE,
            names::ERROR_CONTEXT,
        ];

        proptest! {
            /// Whatever a server sends, an Ack or a reason, never a panic.
            #[test]
            fn any_answer_is_read_without_a_panic(
                status in 100u16..600,
                pairs in proptest::collection::vec(
                    (proptest::sample::select(NAMES.to_vec()), proptest::collection::vec(any::<u8>(), 0..120)),
                    0..10,
                ),
            ) {
                let mut h = HeaderMap::new();
                for (k, v) in pairs {
                    if let Ok(v) = HeaderValue::from_bytes(&v) {
                        h.append(HeaderName::from_static(k), v);
                    }
                }
                if let Ok(ack) = Ack::read(status, &h) {
                    let url = url::Url::parse("http://127.0.0.1/up/x").unwrap();
                    let _ = ack.failure(&url, "Fragment");
                }
            }

            /// What a server writes (under either error header name) is what the client reads.
            #[test]
            fn a_servers_ack_reads_back(
                status in proptest::sample::select(vec![200u16, 201, 403, 413, 416, 500, 501, 503]),
                received in any::<u64>(),
                code in any::<u32>(),
                application in any::<bool>(),
                spec_name in any::<bool>(),
                id in "\\{[A-F0-9]{8}-[A-F0-9]{4}-[A-F0-9]{4}-[A-F0-9]{4}-[A-F0-9]{12}\\}",
            ) {
                let code_text = format!("0x{code:08X}");
                let context = if application { "0x7" } else { "0x5" };
                let received_text = received.to_string();
                let error_name = if spec_name { "BITS-Error" } else { "BITS-Error-Code" };
                let h = headers(&[
                    ("BITS-Packet-Type", b"Ack"),
                    ("BITS-Session-Id", id.as_bytes()),
                    ("BITS-Received-Content-Range", received_text.as_bytes()),
                    (error_name, code_text.as_bytes()),
                    ("BITS-Error-Context", context.as_bytes()),
                ]);
                let ack = Ack::read(status, &h).unwrap();
                prop_assert!(ack.bits);
                prop_assert_eq!(ack.session_id.as_deref(), Some(id.as_str()));
                prop_assert_eq!(ack.received, Some(received));
                prop_assert_eq!(ack.code, Some(ErrorCode(code)));
                let url = url::Url::parse("http://127.0.0.1/up/x").unwrap();
                let f = ack.failure(&url, "Fragment");
                prop_assert_eq!(f.error.code, ErrorCode(code));
                let want = if application { ErrorContext::RemoteApplication } else { ErrorContext::RemoteFile };
                prop_assert_eq!(f.error.context, want);
            }
        }
    }
}
