//! The BITS job model: jobs, their files, states, priorities and properties.
//!
//! The state machine lives in [`JobState`] and the transition methods of [`Job`]; nothing else
//! assigns a state, so an illegal transition cannot be written by accident.

mod bandwidth;
mod codes;
mod credentials;
mod digest;
mod file;
mod identity;
mod info;
mod job;
mod page;
mod properties;
mod rate;
mod reason;
mod schedule;
mod state;
mod time;
mod upload;

pub use bandwidth::{
    BandwidthChange, BandwidthConfig, BandwidthStatus, IdleReason, IdleStatus, LimitReason,
    PolicyStatus,
};
pub use codes::{ErrorCode, ErrorContext, JobError, Status};
pub use credentials::{BasicCredentials, CredentialTarget, Credentials, CredentialsView};
pub use digest::Sha256Digest;
pub(crate) use file::Split;
pub(crate) use file::temp_path_for;
pub use file::{ByteRange, JobFile, NewFile, Validators, validate_local_path, validate_remote_url};
pub use identity::{JobId, JobType, Owner};
pub use info::{ErrorFile, JobErrorInfo, JobInfo, ReplyProgress};
pub(crate) use job::Bookkeeping;
pub use job::{Job, ResumeOutcome};
pub use page::{JobPage, PageCursor};
pub use properties::{
    CustomHeader, JobProperties, NotifyCommandLine, NotifyFlags, PropertyChange, ProxySettings,
    RedirectPolicy, SecurityFlags,
};
pub use rate::{Limit, ParseLimitError};
pub use reason::{PausedBy, WaitReason, local_time};
pub use schedule::{LocalTime, Period, PriorityLimits, Schedule, WallClock, Weekday};
pub use state::{JobState, Priority};
pub use time::Timestamp;
pub(crate) use upload::{SourceStamp, TusUpload, UploadSession, UploadState};
