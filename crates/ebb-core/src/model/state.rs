use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The nine states of a BITS job (`BG_JOB_STATE`, same order and numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued = 0,
    Connecting = 1,
    Transferring = 2,
    Suspended = 3,
    Error = 4,
    TransientError = 5,
    Transferred = 6,
    Acknowledged = 7,
    Cancelled = 8,
}

impl JobState {
    pub const ALL: [Self; 9] = [
        Self::Queued,
        Self::Connecting,
        Self::Transferring,
        Self::Suspended,
        Self::Error,
        Self::TransientError,
        Self::Transferred,
        Self::Acknowledged,
        Self::Cancelled,
    ];

    /// Acknowledged and Cancelled never change again.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Acknowledged | Self::Cancelled)
    }

    /// A worker is moving (or about to move) this job's bytes.
    pub fn is_running(self) -> bool {
        matches!(self, Self::Connecting | Self::Transferring)
    }

    /// The job is on its way without anyone's help: BITS's "action" states.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Self::Queued | Self::Connecting | Self::Transferring | Self::TransientError
        )
    }

    /// The snake_case name used in JSON and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Connecting => "connecting",
            Self::Transferring => "transferring",
            Self::Suspended => "suspended",
            Self::Error => "error",
            Self::TransientError => "transient_error",
            Self::Transferred => "transferred",
            Self::Acknowledged => "acknowledged",
            Self::Cancelled => "cancelled",
        }
    }

    /// The upper-case word BITSAdmin prints (`TRANSIENT_ERROR`, ...).
    pub fn bits_name(self) -> String {
        self.as_str().to_ascii_uppercase()
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let wanted = s.to_ascii_lowercase().replace('-', "_");
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == wanted)
            .ok_or_else(|| format!("unknown job state {s:?}"))
    }
}

/// Job priority (`BG_JOB_PRIORITY`): Foreground runs at once, unthrottled; the other three are
/// background levels served by strict priority with round-robin inside a level.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Foreground = 0,
    High = 1,
    #[default]
    Normal = 2,
    Low = 3,
}

impl Priority {
    pub const ALL: [Self; 4] = [Self::Foreground, Self::High, Self::Normal, Self::Low];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Foreground => "foreground",
            Self::High => "high",
            Self::Normal => "normal",
            Self::Low => "low",
        }
    }

    pub fn is_background(self) -> bool {
        self != Self::Foreground
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let wanted = s.to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == wanted)
            .ok_or_else(|| format!("unknown priority {s:?} (foreground, high, normal or low)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>(), Ok(state));
        }
        assert_eq!(JobState::TransientError.bits_name(), "TRANSIENT_ERROR");
        assert_eq!("HIGH".parse::<Priority>(), Ok(Priority::High));
        assert!("urgent".parse::<Priority>().is_err());
    }

    #[test]
    fn classes() {
        assert!(JobState::Acknowledged.is_final() && JobState::Cancelled.is_final());
        assert!(!JobState::Transferred.is_final());
        assert!(JobState::TransientError.is_active());
        assert!(!JobState::Suspended.is_active());
        assert!(Priority::Foreground < Priority::Low);
    }
}
