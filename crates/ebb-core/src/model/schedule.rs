//! Administrators' limits: caps per priority, and BITS-style schedules (work days and hours,
//! non-work hours, maintenance windows that win), evaluated against a wall clock that tests can
//! set.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::{Limit, Priority};

/// Limits for background jobs: all of them together, and per priority.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PriorityLimits {
    /// All background jobs together.
    pub all: Limit,
    pub high: Limit,
    pub normal: Limit,
    pub low: Limit,
}

impl PriorityLimits {
    /// The limit of one background priority (Foreground is never limited).
    pub fn of(&self, p: Priority) -> Limit {
        match p {
            Priority::Foreground => Limit::Unlimited,
            Priority::High => self.high,
            Priority::Normal => self.normal,
            Priority::Low => self.low,
        }
    }

    pub fn set(&mut self, p: Option<Priority>, limit: Limit) {
        match p {
            None | Some(Priority::Foreground) => self.all = limit,
            Some(Priority::High) => self.high = limit,
            Some(Priority::Normal) => self.normal = limit,
            Some(Priority::Low) => self.low = limit,
        }
    }

    /// The tighter of each pair.
    #[must_use]
    pub fn min(self, o: Self) -> Self {
        Self {
            all: self.all.min(o.all),
            high: self.high.min(o.high),
            normal: self.normal.min(o.normal),
            low: self.low.min(o.low),
        }
    }

    /// Whether `p` may not move a byte: its own limit or the shared one is 0.
    pub fn blocks(&self, p: Priority) -> bool {
        p.is_background() && (self.all == Limit::PAUSED || self.of(p) == Limit::PAUSED)
    }
}

/// A day of the week, Monday first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Weekday(u8);

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Weekday {
    pub const MONDAY: Self = Self(0);

    /// 0 = Monday ... 6 = Sunday.
    pub fn from_monday0(n: u8) -> Self {
        Self(n % 7)
    }

    #[must_use]
    pub fn previous(self) -> Self {
        Self((self.0 + 6) % 7)
    }

    #[must_use]
    pub fn next(self) -> Self {
        Self((self.0 + 1) % 7)
    }
}

impl fmt::Display for Weekday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(DAY_NAMES[usize::from(self.0)])
    }
}

impl FromStr for Weekday {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const FULL: [&str; 7] = [
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
            "sunday",
        ];
        let l = s.trim().to_ascii_lowercase();
        FULL.iter()
            .position(|d| l.len() >= 3 && d.starts_with(&l))
            .map(|i| Self(i as u8))
            .ok_or_else(|| format!("bad day {s:?}: expected mon, tue, wed, thu, fri, sat or sun"))
    }
}

/// Days as users write them: `["mon-fri"]`, `["sat", "sun"]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Days(pub Vec<Weekday>);

impl Days {
    pub fn contains(&self, d: Weekday) -> bool {
        self.0.contains(&d)
    }

    fn parse_item(item: &str, into: &mut Vec<Weekday>) -> Result<(), String> {
        if let Some((a, b)) = item.split_once('-') {
            let (a, b): (Weekday, Weekday) = (a.parse()?, b.parse()?);
            let mut d = a;
            loop {
                into.push(d);
                if d == b {
                    break;
                }
                d = Weekday((d.0 + 1) % 7);
            }
        } else {
            into.push(item.parse()?);
        }
        Ok(())
    }
}

impl Serialize for Days {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(ToString::to_string))
    }
}

impl<'de> Deserialize<'de> for Days {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Vec::<String>::deserialize(d)?;
        let mut days = Vec::new();
        for item in &items {
            Self::parse_item(item, &mut days).map_err(serde::de::Error::custom)?;
        }
        days.sort();
        days.dedup();
        Ok(Self(days))
    }
}

/// Hours of a day, `08:00-17:00`; `22:00-06:00` runs past midnight (its morning part belongs
/// to the day it started); `00:00-24:00` is the whole day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hours {
    start: u16,
    end: u16,
}

impl Hours {
    fn minute(s: &str) -> Result<u16, String> {
        let bad = || format!("bad time {s:?}: expected HH:MM");
        let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
        let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if m >= 60 || h > 24 || (h == 24 && m != 0) {
            return Err(bad());
        }
        Ok(h * 60 + m)
    }
}

impl FromStr for Hours {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("bad hours {s:?}: expected HH:MM-HH:MM"))?;
        let (start, end) = (Self::minute(a)?, Self::minute(b)?);
        if start == end {
            return Err(format!("bad hours {s:?}: the window is empty"));
        }
        Ok(Self { start, end })
    }
}

impl fmt::Display for Hours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        write!(f, "{}-{}", hm(self.start), hm(self.end))
    }
}

impl Serialize for Hours {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hours {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Some days, some hours.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub days: Days,
    pub hours: Hours,
}

impl Window {
    pub fn contains(&self, t: LocalTime) -> bool {
        let Hours { start, end } = self.hours;
        if start < end {
            self.days.contains(t.weekday) && (start..end).contains(&t.minute)
        } else {
            (self.days.contains(t.weekday) && t.minute >= start)
                || (self.days.contains(t.weekday.previous()) && t.minute < end)
        }
    }
}

/// A maintenance window and its limits, which supersede work and non-work limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Maintenance {
    #[serde(flatten)]
    pub window: Window,
    #[serde(default)]
    pub limits: PriorityLimits,
}

/// BITS's EnableBandwidthLimits and EnableMaintenanceLimits in one: work hours with their
/// limits, other hours with theirs, and maintenance windows that win.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Work days and hours; without them every hour is non-work.
    #[serde(default)]
    pub work_hours: Option<Window>,
    #[serde(default)]
    pub work: PriorityLimits,
    #[serde(default)]
    pub non_work: PriorityLimits,
    #[serde(default)]
    pub maintenance: Vec<Maintenance>,
}

/// Which part of the schedule is in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Work,
    NonWork,
    Maintenance,
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Work => "work hours",
            Self::NonWork => "non-work hours",
            Self::Maintenance => "maintenance window",
        })
    }
}

impl Schedule {
    /// The limits in force at `t`, and why.
    pub fn at(&self, t: LocalTime) -> (Period, PriorityLimits) {
        if let Some(m) = self.maintenance.iter().find(|m| m.window.contains(t)) {
            return (Period::Maintenance, m.limits);
        }
        match &self.work_hours {
            Some(w) if w.contains(t) => (Period::Work, self.work),
            _ => (Period::NonWork, self.non_work),
        }
    }
}

impl Schedule {
    /// Minutes from `t` until priority `p` may move bytes again (`None` if it is not blocked
    /// now, or stays blocked all week).
    pub fn minutes_until_unblocked(&self, t: LocalTime, p: Priority) -> Option<u32> {
        if !self.at(t).1.blocks(p) {
            return None;
        }
        let mut at = t;
        (1..=7 * 24 * 60).find(|_| {
            at = at.plus_minute();
            !self.at(at).1.blocks(p)
        })
    }
}

/// A moment of local time, as schedules see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTime {
    pub weekday: Weekday,
    /// Minutes since local midnight.
    pub minute: u16,
}

impl LocalTime {
    pub fn new(weekday: Weekday, hour: u16, minute: u16) -> Self {
        Self {
            weekday,
            minute: (hour % 24) * 60 + minute % 60,
        }
    }

    /// One minute later.
    #[must_use]
    fn plus_minute(self) -> Self {
        if self.minute + 1 >= 24 * 60 {
            Self {
                weekday: self.weekday.next(),
                minute: 0,
            }
        } else {
            Self {
                weekday: self.weekday,
                minute: self.minute + 1,
            }
        }
    }
}

/// Where schedules read the time. The system's local clock, or one a test sets.
#[derive(Clone, Debug, Default)]
pub enum WallClock {
    #[default]
    System,
    Manual(Arc<Mutex<LocalTime>>),
}

impl WallClock {
    /// A clock that reads `t` until set otherwise.
    pub fn manual(t: LocalTime) -> Self {
        Self::Manual(Arc::new(Mutex::new(t)))
    }

    /// Set a manual clock; a system clock ignores this.
    pub fn set(&self, t: LocalTime) {
        if let Self::Manual(m) = self {
            *m.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = t;
        }
    }

    pub fn now(&self) -> LocalTime {
        match self {
            Self::System => {
                use chrono::{Datelike, Timelike};
                let now = chrono::Local::now();
                LocalTime::new(
                    Weekday::from_monday0(now.weekday().num_days_from_monday() as u8),
                    now.hour() as u16,
                    now.minute() as u16,
                )
            }
            Self::Manual(m) => *m.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
        }
    }
}

impl PartialEq for WallClock {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::System, Self::System) => true,
            (Self::Manual(a), Self::Manual(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for WallClock {}

#[cfg(test)]
mod tests {
    #[test]
    fn a_blocked_priority_knows_when_it_moves_again() {
        let s = schedule();
        // Normal is blocked in work hours (08:00-17:00), low never is.
        let wed = LocalTime::new(WED, 12, 0);
        assert_eq!(s.minutes_until_unblocked(wed, Priority::Normal), Some(300));
        assert_eq!(s.minutes_until_unblocked(wed, Priority::Low), None);
        assert_eq!(
            s.minutes_until_unblocked(LocalTime::new(WED, 20, 0), Priority::Normal),
            None
        );
        let always: Schedule = toml::from_str("non_work = { low = \"0\" }").unwrap();
        assert_eq!(always.minutes_until_unblocked(wed, Priority::Low), None);
    }

    use super::*;

    const WED: Weekday = Weekday(2);
    const SAT: Weekday = Weekday(5);

    fn schedule() -> Schedule {
        toml::from_str(
            r#"
            work_hours = { days = ["mon-fri"], hours = "08:00-17:00" }
            work = { low = "128kbit", normal = "0" }
            non_work = { low = "512kbit" }
            [[maintenance]]
            days = ["sat"]
            hours = "22:00-06:00"
            limits = { all = "unlimited" }
            "#,
        )
        .unwrap()
    }

    #[test]
    fn work_non_work_and_maintenance() {
        let s = schedule();
        let (p, l) = s.at(LocalTime::new(WED, 12, 0));
        assert_eq!(p, Period::Work);
        assert_eq!(l.low, Limit::BytesPerSec(16_000));
        assert!(l.blocks(Priority::Normal));
        assert!(!l.blocks(Priority::High));
        assert!(!l.blocks(Priority::Foreground));
        assert_eq!(s.at(LocalTime::new(WED, 17, 0)).0, Period::NonWork);
        assert_eq!(s.at(LocalTime::new(WED, 7, 59)).0, Period::NonWork);
        assert_eq!(
            s.at(LocalTime::new(WED, 20, 0)).1.low,
            Limit::BytesPerSec(64_000)
        );
        // Saturday 23:00 and, past midnight, Sunday 05:59 are maintenance; Sunday 06:00 is not.
        assert_eq!(s.at(LocalTime::new(SAT, 23, 0)).0, Period::Maintenance);
        let sun = Weekday(6);
        assert_eq!(s.at(LocalTime::new(sun, 5, 59)).0, Period::Maintenance);
        assert_eq!(s.at(LocalTime::new(sun, 6, 0)).0, Period::NonWork);
    }

    #[test]
    fn bad_schedules_are_refused_with_a_reason() {
        for (text, says) in [
            (
                r#"work_hours = { days = ["funday"], hours = "08:00-17:00" }"#,
                "bad day",
            ),
            (
                r#"work_hours = { days = ["mon"], hours = "8-17" }"#,
                "HH:MM",
            ),
            (
                r#"work_hours = { days = ["mon"], hours = "25:00-26:00" }"#,
                "HH:MM",
            ),
            (
                r#"work_hours = { days = ["mon"], hours = "09:00-09:00" }"#,
                "empty",
            ),
            (r#"work = { lowest = "1MB/s" }"#, "lowest"),
            (r#"work = { low = "fast" }"#, "bad rate"),
        ] {
            let e = toml::from_str::<Schedule>(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn manual_clock() {
        let c = WallClock::manual(LocalTime::new(WED, 9, 30));
        assert_eq!(c.now().minute, 570);
        c.set(LocalTime::new(SAT, 0, 0));
        assert_eq!(c.now().weekday, SAT);
        assert!(WallClock::System.now().minute < 24 * 60);
    }
}
