//! The body of every error answer: the BITS code, the status, the message, and which error it
//! is ([`ErrorDetail`]), so that the client rebuilds the very variant the engine returned.

use ebb_core::ErrorDetail;
use ebb_core::{Error, ErrorCode, Status};
use serde::{Deserialize, Serialize};

/// `{"code": "0x80200001", "status": "permanent", "message": "...", "detail": {"name":
/// "not_found", ...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub status: Status,
    pub message: String,
    /// Absent from the answers of an ebbd older than this field: the error is then `Remote`.
    #[serde(default = "remote")]
    pub detail: ErrorDetail,
}

fn remote() -> ErrorDetail {
    ErrorDetail::Remote
}

impl From<&Error> for ErrorBody {
    fn from(e: &Error) -> Self {
        Self {
            code: e.code(),
            status: e.status(),
            message: e.to_string(),
            detail: e.detail(),
        }
    }
}

impl From<ErrorBody> for Error {
    fn from(b: ErrorBody) -> Self {
        Error::from_detail(b.detail, b.code, b.status, b.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_pinned() {
        let e = Error::NotFound("nightly".into());
        let json = serde_json::to_value(ErrorBody::from(&e)).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({
                "code": "0x80200001",
                "status": "permanent",
                "message": "job nightly not found",
                "detail": {"name": "not_found", "job": "nightly"},
            })
        );
    }

    #[test]
    fn a_newer_kind_keeps_its_code_and_status() {
        let newer = r#"{"code": "0x80200010", "status": "transient", "message": "later",
                        "detail": {"name": "from_a_newer_ebbd", "extra": 1}}"#;
        let body: ErrorBody = serde_json::from_str(newer).unwrap_or_else(|e| panic!("{e}"));
        let e = Error::from(body);
        assert!(matches!(e, Error::Remote { .. }));
        assert_eq!(
            (e.code(), e.status()),
            (ErrorCode::BG_E_NETWORK_DISCONNECTED, Status::Transient)
        );
    }

    #[test]
    fn an_older_body_is_a_remote_error() {
        let old = r#"{"code": "0x80200001", "status": "permanent", "message": "gone"}"#;
        let body: ErrorBody = serde_json::from_str(old).unwrap_or_else(|e| panic!("{e}"));
        let e = Error::from(body);
        assert!(matches!(e, Error::Remote { .. }));
        assert_eq!(e.code(), ErrorCode::BG_E_NOT_FOUND);
    }
}
