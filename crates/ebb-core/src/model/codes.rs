//! BITS's result codes and error contexts, with BITS's numbers, and the error recorded on a job:
//! nouns of the model, apart from the crate's error type that carries them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A BITS result code (an `HRESULT`), e.g. `0x80190194` for HTTP 404.
///
/// Codes are BITS's numbers wherever BITS has one, so that scripts and the Windows backend agree.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    pub const S_OK: Self = Self(0);
    pub const BG_S_PARTIAL_COMPLETE: Self = Self(0x0020_0017);
    pub const BG_S_UNABLE_TO_DELETE_FILES: Self = Self(0x0020_001A);
    pub const BG_E_NOT_FOUND: Self = Self(0x8020_0001);
    pub const BG_E_INVALID_STATE: Self = Self(0x8020_0002);
    pub const BG_E_PROXY_LIST_TOO_LARGE: Self = Self(0x8020_0018);
    pub const BG_E_PROXY_BYPASS_LIST_TOO_LARGE: Self = Self(0x8020_0019);
    pub const BG_E_EMPTY: Self = Self(0x8020_0003);
    pub const BG_E_DESTINATION_LOCKED: Self = Self(0x8020_000D);
    pub const BG_E_NETWORK_DISCONNECTED: Self = Self(0x8020_0010);
    pub const BG_E_MISSING_FILE_SIZE: Self = Self(0x8020_0011);
    pub const BG_E_INSUFFICIENT_HTTP_SUPPORT: Self = Self(0x8020_0012);
    pub const BG_E_INSUFFICIENT_RANGE_SUPPORT: Self = Self(0x8020_0013);
    pub const BG_E_INVALID_SERVER_RESPONSE: Self = Self(0x8020_001B);
    pub const BG_E_TOO_MANY_FILES: Self = Self(0x8020_001C);
    pub const BG_E_LOCAL_FILE_CHANGED: Self = Self(0x8020_001D);
    pub const BG_E_SESSION_NOT_FOUND: Self = Self(0x8020_001F);
    pub const BG_E_TOO_LARGE: Self = Self(0x8020_0020);
    pub const BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH: Self = Self(0x8020_0022);
    pub const BG_E_STRING_TOO_LONG: Self = Self(0x8020_0021);
    pub const BG_E_NO_PROGRESS: Self = Self(0x8020_0024);
    pub const BG_E_USERNAME_TOO_LARGE: Self = Self(0x8020_0025);
    pub const BG_E_PASSWORD_TOO_LARGE: Self = Self(0x8020_0026);
    pub const BG_E_INVALID_RANGE: Self = Self(0x8020_002B);
    pub const BG_E_OVERLAPPING_RANGES: Self = Self(0x8020_002C);
    pub const BG_E_CONNECT_FAILURE: Self = Self(0x8020_002D);
    pub const BG_E_CONNECTION_CLOSED: Self = Self(0x8020_002E);
    pub const BG_E_BLOCKED_BY_POLICY: Self = Self(0x8020_003E);
    pub const BG_E_INVALID_PROXY_INFO: Self = Self(0x8020_003F);
    pub const BG_E_INVALID_CREDENTIALS: Self = Self(0x8020_0040);
    pub const BG_E_TOO_MANY_RANGES_IN_FILE: Self = Self(0x8020_0052);
    pub const BG_E_MAXDOWNLOAD_TIMEOUT: Self = Self(0x8020_0054);
    /// Not a BITS code: Win32 `ERROR_TIMEOUT` as an HRESULT, used for a stalled body.
    pub const E_TIMEOUT: Self = Self(0x8007_05B4);
    pub const E_INVALIDARG: Self = Self(0x8007_0057);
    pub const E_NOTIMPL: Self = Self(0x8000_4001);
    pub const E_ACCESSDENIED: Self = Self(0x8007_0005);
    pub const E_FAIL: Self = Self(0x8000_4005);
    /// Win32 `ERROR_DISK_FULL` as an HRESULT.
    pub const E_DISK_FULL: Self = Self(0x8007_0070);
    /// Win32 `ERROR_FILE_NOT_FOUND` as an HRESULT.
    pub const E_FILE_NOT_FOUND: Self = Self(0x8007_0002);
    /// Win32 `ERROR_CRC` ("data error") as an HRESULT: the bytes fail their SHA-256 digest.
    pub const E_DIGEST_MISMATCH: Self = Self(0x8007_0017);
    /// WinHTTP's certificate errors as HRESULTs, as BITS reports them.
    pub const SECURE_CERT_DATE_INVALID: Self = Self(0x8007_2F05);
    pub const SECURE_CERT_CN_INVALID: Self = Self(0x8007_2F06);
    pub const SECURE_INVALID_CA: Self = Self(0x8007_2F0D);
    pub const SECURE_CERT_REV_FAILED: Self = Self(0x8007_2F19);
    pub const SECURE_CERT_REVOKED: Self = Self(0x8007_2F8A);
    pub const SECURE_FAILURE: Self = Self(0x8007_2F8F);
    pub const SECURE_CERT_WRONG_USAGE: Self = Self(0x8007_2F93);
    /// Win32 `ERROR_TOO_MANY_REDIRECTS`-like: a redirect the job's policy forbids.
    pub const E_REDIRECT_REFUSED: Self = Self(0x8019_012E);

    /// The code for an HTTP status: `0x80190000 + status` (`BG_E_HTTP_ERROR_nnn`).
    pub fn http(status: u16) -> Self {
        Self(0x8019_0000 + u32::from(status))
    }

    /// The HTTP status if this is a `BG_E_HTTP_ERROR_nnn` code.
    pub fn http_status(self) -> Option<u16> {
        (self.0 & 0xFFFF_0000 == 0x8019_0000).then_some((self.0 & 0xFFFF) as u16)
    }

    /// A human description in the spirit of BITS's message table.
    pub fn description(self) -> String {
        if let Some(status) = self.http_status() {
            return format!("HTTP status {status}: {}", http_reason(status));
        }
        let text = match self {
            Self::S_OK => "The operation completed successfully.",
            Self::BG_S_PARTIAL_COMPLETE => "Some of the job's files were not transferred.",
            Self::BG_E_NOT_FOUND => "The requested job was not found.",
            Self::BG_E_INVALID_STATE => {
                "The requested action is not allowed in the current job state."
            }
            Self::BG_E_EMPTY => "There are currently no files attached to this job.",
            Self::BG_E_NETWORK_DISCONNECTED => "No network connection is active on this computer.",
            Self::BG_E_INSUFFICIENT_RANGE_SUPPORT => {
                "The server does not support the necessary HTTP protocol: it ignored the Range header."
            }
            Self::BG_E_INVALID_SERVER_RESPONSE => "The server's response was not valid.",
            Self::BG_E_TOO_MANY_FILES => "Upload jobs can contain only one file.",
            Self::BG_E_LOCAL_FILE_CHANGED => "The local file changed while it was being uploaded.",
            Self::BG_E_SESSION_NOT_FOUND => "The server does not know the upload session.",
            Self::BG_E_TOO_LARGE => "The upload or the reply is larger than allowed.",
            Self::BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH => {
                "The server does not speak the BITS upload protocol this client speaks."
            }
            Self::BG_E_NO_PROGRESS => "The job made no progress within the no-progress timeout.",
            Self::BG_E_INVALID_RANGE => "A requested range lies outside the remote file.",
            Self::BG_E_OVERLAPPING_RANGES => "The requested ranges overlap.",
            Self::BG_E_CONNECT_FAILURE => "The connection to the server could not be established.",
            Self::BG_E_CONNECTION_CLOSED => {
                "The connection was closed before the body was complete."
            }
            Self::BG_E_INVALID_PROXY_INFO => "The proxy settings are not valid.",
            Self::BG_E_MAXDOWNLOAD_TIMEOUT => {
                "The job did not finish within its maximum download time."
            }
            Self::BG_E_BLOCKED_BY_POLICY => {
                "Group Policy settings prevent background jobs from transferring at this time."
            }
            Self::E_TIMEOUT => "The server stopped sending data (timed out).",
            Self::E_INVALIDARG => "One or more arguments are not valid.",
            Self::E_NOTIMPL => "Not implemented.",
            Self::E_ACCESSDENIED => "Access is denied.",
            Self::E_DISK_FULL => "There is not enough space on the disk.",
            Self::E_FILE_NOT_FOUND => "The system cannot find the file specified.",
            Self::E_DIGEST_MISMATCH => "The file's bytes do not match its SHA-256 digest.",
            Self::SECURE_CERT_DATE_INVALID => {
                "The server's certificate is expired or not yet valid."
            }
            Self::SECURE_CERT_CN_INVALID => "The server's certificate is for another host name.",
            Self::SECURE_INVALID_CA => {
                "The server's certificate is not signed by a trusted certificate authority."
            }
            Self::SECURE_CERT_REV_FAILED => {
                "The revocation status of the server's certificate could not be checked."
            }
            Self::SECURE_CERT_REVOKED => "The server's certificate was revoked.",
            Self::SECURE_FAILURE => "The server's certificate is not valid.",
            Self::SECURE_CERT_WRONG_USAGE => {
                "The server's certificate is not meant for TLS servers."
            }
            Self::E_REDIRECT_REFUSED => {
                "The server redirected the request and the job's policy forbids it."
            }
            _ => "Unspecified error.",
        };
        text.to_owned()
    }
}

fn http_reason(status: u16) -> &'static str {
    match status {
        400 => "The request could not be processed by the server due to invalid syntax.",
        401 => "The requested resource requires user authentication.",
        403 => "The server understood the request, but is refusing to fulfill it.",
        404 => "The requested URL does not exist on the server.",
        407 => "Proxy authentication is required.",
        408 => "The server timed out waiting for the request.",
        416 => "The requested range is not satisfiable.",
        429 => "Too many requests.",
        500 => "An unexpected condition prevented the server from fulfilling the request.",
        502 => "The server received an invalid response from an upstream server.",
        503 => "The service is temporarily overloaded.",
        504 => "The request was timed out waiting for a gateway.",
        _ => "The server returned an error status.",
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08x}", self.0)
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ErrorCode(0x{:08x})", self.0)
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let hex = text.trim_start_matches("0x").trim_start_matches("0X");
        u32::from_str_radix(hex, 16)
            .map(Self)
            .map_err(|_| serde::de::Error::custom(format!("not an error code: {text}")))
    }
}

/// Where an error happened (`BG_ERROR_CONTEXT`, with BITS's numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorContext {
    None = 0,
    Unknown = 1,
    GeneralQueueManager = 2,
    QueueManagerNotification = 3,
    LocalFile = 4,
    RemoteFile = 5,
    GeneralTransport = 6,
    RemoteApplication = 7,
}

impl ErrorContext {
    /// BITS's number for this context.
    pub fn number(self) -> u32 {
        self as u32
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::None => "An error has not occurred.",
            Self::Unknown => "The error context is unknown.",
            Self::GeneralQueueManager => "The error occurred in the transfer queue manager.",
            Self::QueueManagerNotification => {
                "The error occurred while the notification callback was being called."
            }
            Self::LocalFile => "The error occurred while the local file was being processed.",
            Self::RemoteFile => "The error occurred while the remote file was being processed.",
            Self::GeneralTransport => "The error occurred in the transport layer.",
            Self::RemoteApplication => {
                "The error occurred while the server application was processing the request."
            }
        }
    }
}

/// Whether trying again later can help: BITS's `TRANSIENT_ERROR` versus `ERROR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Transient,
    Permanent,
}

/// The last error recorded on a job (what `GetError` returns in BITS).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    pub context: ErrorContext,
    pub code: ErrorCode,
    pub description: String,
    /// Index of the file the error concerns, if any.
    pub file_index: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_codes_follow_bits_numbering() {
        assert_eq!(ErrorCode::http(404).0, 0x8019_0194);
        assert_eq!(ErrorCode::http(503).to_string(), "0x801901f7");
        assert_eq!(ErrorCode(0x8019_0194).http_status(), Some(404));
        assert_eq!(ErrorCode::BG_E_EMPTY.http_status(), None);
        assert!(ErrorCode::http(404).description().contains("404"));
    }

    #[test]
    fn codes_round_trip_through_json() {
        let json = serde_json::to_string(&ErrorCode::BG_E_INVALID_STATE).unwrap_or_default();
        assert_eq!(json, "\"0x80200002\"");
        let back: ErrorCode = serde_json::from_str(&json).unwrap_or(ErrorCode::S_OK);
        assert_eq!(back, ErrorCode::BG_E_INVALID_STATE);
    }
}
