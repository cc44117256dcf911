//! Who a job is and whose: its id, its type, its owner.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::Result;

/// A job's identity: a random UUID, shown lower-case and hyphenated.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(Uuid);

impl JobId {
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    /// The id as one number, fields in the order they are written (as a Windows `GUID`'s
    /// `from_u128`/`to_u128` read it, so that BITS's job GUIDs and ebb's ids print alike).
    pub fn as_u128(self) -> u128 {
        self.0.as_u128()
    }

    pub fn from_u128(n: u128) -> Self {
        Self(Uuid::from_u128(n))
    }

    /// The 32 hex digits without hyphens.
    pub fn simple(self) -> String {
        self.0.simple().to_string()
    }

    /// BITSAdmin's form: `{XXXXXXXX-XXXX-...}`, upper case.
    pub fn braced_upper(self) -> String {
        format!(
            "{{{}}}",
            self.0.hyphenated().to_string().to_ascii_uppercase()
        )
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({})", self.0.hyphenated())
    }
}

impl FromStr for JobId {
    type Err = String;
    /// Accepts `{GUID}` or a bare GUID, any case.
    fn from_str(s: &str) -> Result<Self, String> {
        let bare = s.trim().trim_start_matches('{').trim_end_matches('}');
        Uuid::parse_str(bare)
            .map(Self)
            .map_err(|_| format!("{s:?} is not a job id"))
    }
}

/// `BG_JOB_TYPE`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobType {
    #[default]
    Download = 0,
    Upload = 1,
    UploadReply = 2,
}

impl JobType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Download => "download",
            Self::Upload => "upload",
            Self::UploadReply => "upload_reply",
        }
    }
}

impl fmt::Display for JobType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "download" => Ok(Self::Download),
            "upload" => Ok(Self::Upload),
            "upload_reply" => Ok(Self::UploadReply),
            _ => Err(format!(
                "unknown job type {s:?} (download, upload or upload-reply)"
            )),
        }
    }
}

/// Who owns a job: the account that created it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub uid: u32,
    pub name: String,
}

impl Owner {
    /// The account this process runs as.
    pub fn current() -> Self {
        // The name comes from the passwd database via whoami.
        let uid = Self::current_uid();
        let name = whoami::username().unwrap_or_else(|_| uid.to_string());
        Self { uid, name }
    }

    /// This process's user id (0 where there are none).
    pub fn current_uid() -> u32 {
        getuid()
    }
}

#[cfg(unix)]
fn getuid() -> u32 {
    // SAFETY: `getuid` has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    unsafe {
        libc::getuid()
    }
}

#[cfg(not(unix))]
fn getuid() -> u32 {
    0
}
