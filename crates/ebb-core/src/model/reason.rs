//! Why a job is not moving: the thing BITS (and every background transfer service) keeps to
//! itself. The job's own state gives most reasons; the scheduler adds those only it knows
//! (who holds the slots, a paused cap, when a policy window ends).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{ErrorCode, JobState, Period, Priority, Timestamp};

/// Why a job waits, with the time it will next try where there is one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WaitReason {
    /// Suspended: nothing moves until the job is resumed.
    Suspended,
    /// Queued while background jobs of a higher priority hold every slot.
    HigherPriority {
        /// Jobs ahead of it: running or queued, of a higher priority.
        ahead: usize,
    },
    /// Queued behind jobs of its own priority (first come, then time slices).
    Turn { ahead: usize, priority: Priority },
    /// Queued in an engine that does not run jobs (an embedded command that only edits the
    /// queue): it moves when the daemon, or an engine that schedules, opens the queue.
    NotScheduled,
    /// TransientError: tries again at `next_try_at` (attempt number `attempt`).
    Retry {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next_try_at: Option<Timestamp>,
        attempt: u32,
        /// The last error, in words.
        cause: String,
    },
    /// TransientError with no network up: tries again at `next_try_at`.
    NoNetwork {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next_try_at: Option<Timestamp>,
        attempt: u32,
    },
    /// A bandwidth policy window allows its priority no bytes until `until`.
    Policy {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        period: Option<Period>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<Timestamp>,
    },
    /// Running, but a rate cap of 0 pauses it.
    Paused { by: PausedBy },
    /// Transferred: its files appear at their names when the job is completed.
    Complete,
    /// Error: it moves again only if resumed (or is dropped by cancel).
    Error,
    /// A reason a newer engine gave that this version does not know.
    #[serde(other)]
    Unknown,
}

/// Which cap of 0 pauses a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PausedBy {
    /// The job's own maximum rate.
    Job,
    /// The cap of its priority, or of all background jobs.
    Background,
}

impl WaitReason {
    /// The reason a job's own record gives (`None` while it moves, or when only the scheduler
    /// knows why it waits).
    pub fn of_state(
        state: JobState,
        error: Option<(ErrorCode, &str)>,
        error_count: u32,
        next_try_at: Option<Timestamp>,
    ) -> Option<Self> {
        Some(match state {
            JobState::Suspended => Self::Suspended,
            JobState::Transferred => Self::Complete,
            JobState::Error => Self::Error,
            JobState::TransientError => match error {
                Some((ErrorCode::BG_E_BLOCKED_BY_POLICY, _)) => Self::Policy {
                    period: None,
                    until: None,
                },
                Some((ErrorCode::BG_E_NETWORK_DISCONNECTED, _)) => Self::NoNetwork {
                    next_try_at,
                    attempt: error_count.saturating_add(1),
                },
                other => Self::Retry {
                    next_try_at,
                    attempt: error_count.saturating_add(1),
                    cause: other.map_or_else(String::new, |(_, text)| text.to_owned()),
                },
            },
            _ => return None,
        })
    }

    /// Whether the scheduler's reason still fits a job in `state` (a reason noted before the
    /// job's state changed is no reason).
    pub(crate) fn fits(&self, state: JobState) -> bool {
        match self {
            Self::HigherPriority { .. } | Self::Turn { .. } | Self::NotScheduled => {
                state == JobState::Queued
            }
            Self::Paused { .. } => state.is_running(),
            Self::Policy { .. } | Self::Retry { .. } | Self::NoNetwork { .. } => {
                state == JobState::TransientError
            }
            Self::Suspended => state == JobState::Suspended,
            Self::Complete => state == JobState::Transferred,
            Self::Error => state == JobState::Error,
            Self::Unknown => false,
        }
    }

    /// A short name for tables: `suspended`, `retry`, `higher-priority`, ...
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Suspended => "suspended",
            Self::HigherPriority { .. } => "higher-priority",
            Self::Turn { .. } => "turn",
            Self::NotScheduled => "not-scheduled",
            Self::Retry { .. } => "retry",
            Self::NoNetwork { .. } => "no-network",
            Self::Policy { .. } => "policy",
            Self::Paused { .. } => "paused",
            Self::Complete => "complete",
            Self::Error => "error",
            Self::Unknown => "unknown",
        }
    }

    /// When the job will next try by itself, if it will.
    pub fn next_try_at(&self) -> Option<Timestamp> {
        match self {
            Self::Retry { next_try_at, .. } | Self::NoNetwork { next_try_at, .. } => *next_try_at,
            Self::Policy { until, .. } => *until,
            _ => None,
        }
    }
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// A time as a person reads it here: `14:03:10` today, else `2026-12-04 14:03`.
pub fn local_time(t: Timestamp) -> String {
    let local: chrono::DateTime<chrono::Local> = t.to_system_time().into();
    if local.date_naive() == chrono::Local::now().date_naive() {
        local.format("%H:%M:%S").to_string()
    } else {
        local.format("%Y-%m-%d %H:%M").to_string()
    }
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |t: &Option<Timestamp>| t.map_or_else(|| "soon".to_owned(), local_time);
        match self {
            Self::Suspended => f.write_str("suspended: waits to be resumed"),
            Self::HigherPriority { ahead } => write!(
                f,
                "queued behind {} of higher priority",
                plural(*ahead, "job")
            ),
            Self::Turn { ahead, priority } => write!(
                f,
                "queued: its turn comes after {} of {priority} priority",
                plural(*ahead, "job")
            ),
            Self::NotScheduled => f.write_str("queued: no engine is running the queue"),
            Self::Retry {
                next_try_at,
                attempt,
                cause,
            } => {
                write!(f, "retry at {} (attempt {attempt})", at(next_try_at))?;
                if cause.is_empty() {
                    Ok(())
                } else {
                    write!(f, " after: {cause}")
                }
            }
            Self::NoNetwork {
                next_try_at,
                attempt,
            } => write!(
                f,
                "no network: retry at {} (attempt {attempt})",
                at(next_try_at)
            ),
            Self::Policy { period, until } => {
                f.write_str("bandwidth policy allows no bytes")?;
                if let Some(p) = period {
                    write!(f, " in {p}")?;
                }
                match until {
                    Some(t) => write!(f, " until {}", local_time(*t)),
                    None => Ok(()),
                }
            }
            Self::Paused { by: PausedBy::Job } => f.write_str("paused: its rate cap is 0"),
            Self::Paused {
                by: PausedBy::Background,
            } => f.write_str("paused: the background rate cap is 0"),
            Self::Complete => f.write_str("transferred: waits to be completed"),
            Self::Error => f.write_str("error: waits to be resumed or cancelled"),
            Self::Unknown => f.write_str("waiting (for a reason this version cannot name)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_alone_names_most_reasons() {
        let t = Some(Timestamp::from_millis(1_000));
        assert_eq!(
            WaitReason::of_state(JobState::Suspended, None, 0, None),
            Some(WaitReason::Suspended)
        );
        assert_eq!(
            WaitReason::of_state(JobState::Transferring, None, 0, None),
            None
        );
        let retry = WaitReason::of_state(
            JobState::TransientError,
            Some((ErrorCode::http(503), "busy")),
            3,
            t,
        );
        assert_eq!(
            retry,
            Some(WaitReason::Retry {
                next_try_at: t,
                attempt: 4,
                cause: "busy".into()
            })
        );
        let net = WaitReason::of_state(
            JobState::TransientError,
            Some((ErrorCode::BG_E_NETWORK_DISCONNECTED, "x")),
            0,
            t,
        );
        assert_eq!(net.as_ref().and_then(WaitReason::next_try_at), t);
        assert!(net.is_some_and(|r| r.to_string().starts_with("no network: retry at ")));
    }

    #[test]
    fn the_wire_form_is_tagged_by_kind() {
        let r = WaitReason::Turn {
            ahead: 2,
            priority: Priority::Low,
        };
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "turn", "ahead": 2, "priority": "low"})
        );
        assert_eq!(serde_json::from_value::<WaitReason>(json).unwrap(), r);
        // A newer engine's reason is read, not refused.
        let newer = serde_json::json!({"kind": "on_battery", "until": "x"});
        assert_eq!(
            serde_json::from_value::<WaitReason>(newer).unwrap(),
            WaitReason::Unknown
        );
        assert_eq!(
            r.to_string(),
            "queued: its turn comes after 2 jobs of low priority"
        );
    }
}
