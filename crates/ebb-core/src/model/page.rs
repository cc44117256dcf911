//! Listing in pages: jobs come in (creation time, id) order, and a page names where the next
//! one starts, so that a queue of any size is read a bounded slice at a time.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{JobId, JobInfo, Timestamp};

/// Where a page starts: after the job with this creation time and id. Written
/// `<unix milliseconds>.<job id>`; a job created or finished meanwhile never shifts a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct PageCursor {
    pub created_at: Timestamp,
    pub id: JobId,
}

impl PageCursor {
    /// The cursor just past `job`.
    pub fn after(job: &JobInfo) -> Self {
        Self {
            created_at: job.created_at,
            id: job.id,
        }
    }

    /// Whether `job` comes after this cursor.
    pub fn precedes(&self, job: &JobInfo) -> bool {
        (job.created_at, job.id) > (self.created_at, self.id)
    }
}

impl fmt::Display for PageCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.created_at.as_millis(), self.id)
    }
}

impl FromStr for PageCursor {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a page cursor (<unix ms>.<job id>)");
        let (ms, id) = text.split_once('.').ok_or_else(bad)?;
        Ok(Self {
            created_at: Timestamp::from_millis(ms.parse().map_err(|_| bad())?),
            id: id.parse().map_err(|_| bad())?,
        })
    }
}

impl From<PageCursor> for String {
    fn from(c: PageCursor) -> Self {
        c.to_string()
    }
}

impl TryFrom<String> for PageCursor {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

/// One page of a listing: its jobs, and where the next page starts (`None` after the last).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPage {
    pub jobs: Vec<JobInfo>,
    pub next: Option<PageCursor>,
}

impl JobPage {
    /// The page of at most `limit` jobs after `after` in `jobs` (already in listing order).
    pub fn of(jobs: Vec<JobInfo>, after: Option<PageCursor>, limit: usize) -> Self {
        let limit = limit.max(1);
        let mut page: Vec<JobInfo> = jobs
            .into_iter()
            .filter(|j| after.is_none_or(|c| c.precedes(j)))
            .take(limit + 1)
            .collect();
        let more = page.len() > limit;
        page.truncate(limit);
        Self::with_more(page, more)
    }

    /// A page of `jobs`, followed by another if `more`.
    pub fn with_more(jobs: Vec<JobInfo>, more: bool) -> Self {
        let next = if more {
            jobs.last().map(PageCursor::after)
        } else {
            None
        };
        Self { jobs, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_written_and_refuses_garbage() {
        let c = PageCursor {
            created_at: Timestamp::from_millis(1_764_000_000_123),
            id: JobId::new(),
        };
        let text = c.to_string();
        assert!(text.starts_with("1764000000123."), "{text}");
        assert_eq!(text.parse::<PageCursor>().unwrap(), c);
        assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{text}\""));
        for bad in ["", "12", "x.y", "12.not-an-id"] {
            assert!(bad.parse::<PageCursor>().is_err(), "{bad}");
        }
    }
}
