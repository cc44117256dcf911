//! An upload file's dealings with the server ([MC-BUP]): kept with its progress, so that an
//! upload goes on after a crash in the session the server knows, and never mixes two versions
//! of its source.

use serde::{Deserialize, Serialize};

use super::Timestamp;

/// What an upload file keeps between runs (stored as JSON in `files.upload`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UploadState {
    /// The source as it was when its upload began: a change after that is an error
    /// (`BG_E_LOCAL_FILE_CHANGED`), never a mixed upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceStamp>,
    /// The server's session, once Create-Session answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<UploadSession>,
    /// A tus upload, once the server created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tus: Option<TusUpload>,
}

/// An upload of the tus protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TusUpload {
    /// Where the server keeps it (its creation's `Location`, resolved).
    pub location: String,
}

/// A local file's size and times when its upload began: a write changes the size or the
/// modification time (what BITS compares). The change time and inode are kept for the log and
/// to tell a file replaced at its path within a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceStamp {
    pub len: u64,
    /// Modification time, nanoseconds since the epoch.
    pub modified_ns: i64,
    /// Unix: the inode's change time, nanoseconds since the epoch, and the inode number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_ns: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inode: Option<u64>,
}

/// A session of the BITS upload protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UploadSession {
    /// `BITS-Session-Id`, as the server sent it.
    pub id: String,
    /// `BITS-Host-Id`: the host (and maybe port) the server pinned the session to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `BITS-Host-Id-Fallback-Timeout`: how long packets to that host may fail before the
    /// client goes back to the URL's own host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_fallback_secs: Option<u64>,
    /// Since when packets to the pinned host have failed, while they do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_failing_since: Option<Timestamp>,
    /// Upload-reply: `BITS-Reply-URL` of the last fragment's Ack, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_url: Option<String>,
}

impl UploadSession {
    pub(crate) fn new(id: String) -> Self {
        Self {
            id,
            host: None,
            host_fallback_secs: None,
            host_failing_since: None,
            reply_url: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored form is pinned: an upgrade must read what an older ebb wrote.
    #[test]
    fn stored_form() {
        let state = UploadState {
            source: Some(SourceStamp {
                len: 5,
                modified_ns: 1_700_000_000_000_000_001,
                changed_ns: Some(1_700_000_000_000_000_002),
                inode: Some(42),
            }),
            session: Some(UploadSession {
                host: Some("node2:8080".into()),
                host_fallback_secs: Some(86_400),
                host_failing_since: Some(Timestamp::from_millis(1_700_000_000_000)),
                reply_url: Some("BITS-Sessions\\Replies\\k\\responsefile.bin".into()),
                ..UploadSession::new("{A0FF5911-0000-4000-8000-000000000001}".into())
            }),
            tus: None,
        };
        let text = serde_json::to_string(&state).unwrap();
        assert_eq!(
            text,
            r#"{"source":{"len":5,"modified_ns":1700000000000000001,"changed_ns":1700000000000000002,"inode":42},"session":{"id":"{A0FF5911-0000-4000-8000-000000000001}","host":"node2:8080","host_fallback_secs":86400,"host_failing_since":"2023-11-14T22:13:20.000Z","reply_url":"BITS-Sessions\\Replies\\k\\responsefile.bin"}}"#
        );
        assert_eq!(serde_json::from_str::<UploadState>(&text).unwrap(), state);
        assert_eq!(
            serde_json::from_str::<UploadState>("{}").unwrap(),
            UploadState::default()
        );
        assert!(serde_json::from_str::<UploadState>(r#"{"sesion":null}"#).is_err());
        let tus = UploadState {
            tus: Some(TusUpload {
                location: "https://h/files/abc".into(),
            }),
            ..UploadState::default()
        };
        let text = serde_json::to_string(&tus).unwrap();
        assert_eq!(text, r#"{"tus":{"location":"https://h/files/abc"}}"#);
        assert_eq!(serde_json::from_str::<UploadState>(&text).unwrap(), tus);
    }
}
