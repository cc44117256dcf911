//! Acks: every answer of the BITS upload protocol is a `BITS-Packet-Type: Ack`, with its
//! `Content-Length` even when empty. An error carries its HRESULT under both header names in
//! use (`BITS-Error-Code`, from Microsoft's pages, and `BITS-Error`, from [MC-BUP] §2.2.1.2) and
//! its context: 0x5 the server, 0x7 the server application.

use axum::http::{HeaderName, HeaderValue, StatusCode};

/// The protocol's header names, as `http` spells them (lower case).
pub mod names {
    use axum::http::HeaderName;

    pub const PACKET_TYPE: HeaderName = HeaderName::from_static("bits-packet-type");
    pub const RECEIVED: HeaderName = HeaderName::from_static("bits-received-content-range");
    pub const ERROR_CODE: HeaderName = HeaderName::from_static("bits-error-code");
    pub const ERROR: HeaderName = HeaderName::from_static("bits-error");
    pub const ERROR_CONTEXT: HeaderName = HeaderName::from_static("bits-error-context");
    pub const PROTOCOL: HeaderName = HeaderName::from_static("bits-protocol");
    pub const SESSION_ID: HeaderName = HeaderName::from_static("bits-session-id");
    pub const HOST_ID: HeaderName = HeaderName::from_static("bits-host-id");
    pub const HOST_ID_FALLBACK: HeaderName =
        HeaderName::from_static("bits-host-id-fallback-timeout");
    pub const REPLY_URL: HeaderName = HeaderName::from_static("bits-reply-url");
}
use axum::response::{IntoResponse, Response};

/// An HRESULT a server sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Code(pub u32);

impl Code {
    pub const SESSION_NOT_FOUND: Self = Self(0x8020_001F);
    pub const FRAGMENT_TOO_LARGE: Self = Self(0x8020_0020);
    pub const ACCESS_DENIED: Self = Self(0x8007_0005);
    pub const INVALID_ARG: Self = Self(0x8007_0057);
    /// What [MC-BUP] §2.2.1.2 says a server sends for a full disk, as written there (Win32's
    /// ERROR_DISK_FULL is 112, which is 0x70: the spec seems to write it in decimal digits).
    pub const DISK_FULL: Self = Self(0x8007_0112);
    /// What a client is sent when the server application did not answer in time (the same
    /// value, as Microsoft's notification protocol page gives it).
    pub const APPLICATION_TIMEOUT: Self = Self(0x8007_0112);
    pub const FAIL: Self = Self(0x8000_4005);
}

/// The error context of a refusal by the BITS server itself, and by the server application.
const SERVER_CONTEXT: &str = "0x5";
const APPLICATION_CONTEXT: &str = "0x7";

/// Why a packet is refused: the status, and the code and context when there is one (a 416 and
/// a 413 have none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: Option<Code>,
    /// The server application failed, not the BITS server.
    pub application: bool,
    /// For the log only; the client sees the code.
    pub why: String,
}

impl Refusal {
    pub fn new(status: StatusCode, code: Code) -> Self {
        Self {
            status,
            code: Some(code),
            application: false,
            why: String::new(),
        }
    }

    /// A bare status, without a BITS code (a 404, or a 413 that tells the client to shrink
    /// its fragments).
    pub fn status(status: StatusCode) -> Self {
        Self {
            code: None,
            ..Self::new(status, Code::FAIL)
        }
    }

    /// 400 with `E_INVALIDARG`: a malformed or unexpected packet.
    pub fn bad(why: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Code::INVALID_ARG).because(why)
    }

    pub fn because(mut self, why: impl Into<String>) -> Self {
        self.why = why.into();
        self
    }

    pub fn session_not_found() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, Code::SESSION_NOT_FOUND)
    }

    pub fn denied(why: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, Code::ACCESS_DENIED).because(why)
    }
}

/// An Ack, with its headers.
#[derive(Debug, Default)]
pub struct Ack {
    status: Option<StatusCode>,
    headers: Vec<(HeaderName, String)>,
}

impl Ack {
    pub fn ok() -> Self {
        Self::default()
    }

    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    pub fn header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// `BITS-Received-Content-Range`: the offset of the next byte the server wants.
    pub fn received(self, next: u64) -> Self {
        self.header(names::RECEIVED, next.to_string())
    }
}

impl IntoResponse for Ack {
    fn into_response(self) -> Response {
        let mut response = (self.status.unwrap_or(StatusCode::OK), "").into_response();
        let headers = response.headers_mut();
        headers.insert(names::PACKET_TYPE, HeaderValue::from_static("Ack"));
        headers.insert(
            axum::http::header::CONTENT_LENGTH,
            HeaderValue::from_static("0"),
        );
        for (name, value) in self.headers {
            // Values are made here, from ids, numbers and paths already checked.
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.append(name, value);
            }
        }
        response
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut ack = Ack::ok().status(self.status);
        if let Some(Code(code)) = self.code {
            let code = format!("0x{code:08X}");
            ack = ack
                .header(names::ERROR_CODE, code.clone())
                .header(names::ERROR, code)
                .header(
                    names::ERROR_CONTEXT,
                    if self.application {
                        APPLICATION_CONTEXT
                    } else {
                        SERVER_CONTEXT
                    },
                );
        }
        ack.into_response()
    }
}
