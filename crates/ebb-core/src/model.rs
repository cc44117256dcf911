//! The BITS job model: jobs, their files, states, priorities and properties.
//!
//! The state machine lives in [`JobState`] and the transition methods of [`Job`]; nothing else
//! assigns a state, so an illegal transition cannot be written by accident.

mod digest;
mod file;
mod job;
mod properties;
mod state;
mod time;

pub use digest::Sha256Digest;
pub use file::{ByteRange, JobFile, NewFile, Validators, validate_local_path, validate_remote_url};
pub(crate) use job::Schedule;
pub use job::{ErrorFile, Job, JobErrorInfo, JobId, JobInfo, JobType, Owner, ResumeOutcome};
pub use properties::{
    BasicCredentials, CredentialTarget, Credentials, CredentialsView, CustomHeader, JobProperties,
    NotifyCommandLine, NotifyFlags, PropertyChange, ProxySettings, RedirectPolicy, SecurityFlags,
};
pub use state::{JobState, Priority};
pub use time::Timestamp;
