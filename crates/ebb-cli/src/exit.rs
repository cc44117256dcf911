//! `ebb`'s exit codes, one meaning each, as the README lists them.

use std::process::ExitCode;

/// The operation failed (the message says why): a job ended in Error, a server refused.
pub const FAILED: u8 = 1;
/// Bad usage: an unknown flag, a value ebb or the daemon refuses, a missing argument.
pub const USAGE: u8 = 2;
/// A `--timeout` passed before the job settled (as `timeout(1)` exits).
pub const TIMED_OUT: u8 = 124;

/// An error the caller made on the command line, said as such (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// Another program's failure, passed on with its message and exit code (a daemon that could
/// not start).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failed {
    pub code: u8,
    pub message: String,
}

/// Exit 2 with `message`.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Usage(message.into()).into()
}

/// The exit code for an error: 2 when it is a value the caller gave that ebb or the daemon
/// refused, else 1.
pub fn code_for(e: &anyhow::Error) -> ExitCode {
    if let Some(f) = e.downcast_ref::<Failed>() {
        return ExitCode::from(f.code);
    }
    let usage = e.chain().any(|cause| {
        cause.is::<Usage>()
            || cause.downcast_ref::<ebb::Error>().is_some_and(|e| {
                matches!(
                    e,
                    ebb::Error::InvalidArgument(_)
                        | ebb::Error::InvalidRange { .. }
                        | ebb::Error::TooLarge { .. }
                )
            })
    });
    ExitCode::from(if usage { USAGE } else { FAILED })
}
