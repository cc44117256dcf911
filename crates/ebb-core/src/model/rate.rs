//! Byte rates as users write them: `10MiB/s`, `500KB/s`, `80mbit`, `0` (pause), `unlimited`.

use std::fmt;
use std::str::FromStr;

/// A bandwidth limit: a number of bytes per second (0 pauses), or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Limit {
    #[default]
    Unlimited,
    BytesPerSec(u64),
}

impl Limit {
    pub const PAUSED: Self = Self::BytesPerSec(0);

    /// The tighter of two limits.
    #[must_use]
    pub fn min(self, other: Self) -> Self {
        match (self, other) {
            (Self::Unlimited, x) | (x, Self::Unlimited) => x,
            (Self::BytesPerSec(a), Self::BytesPerSec(b)) => Self::BytesPerSec(a.min(b)),
        }
    }

    pub fn bytes_per_sec(self) -> Option<u64> {
        match self {
            Self::Unlimited => None,
            Self::BytesPerSec(n) => Some(n),
        }
    }

    pub fn is_unlimited(self) -> bool {
        self == Self::Unlimited
    }

    /// In megabits per second, as network people say it: `47.8 Mbit/s`.
    pub fn as_mbit(self) -> Option<f64> {
        self.bytes_per_sec().map(|b| b as f64 * 8.0 / 1e6)
    }
}

/// (suffix, bytes per unit). Matched case-insensitively, longest first, after an optional
/// `/s` or `ps` is dropped. Bit units divide by 8.
const UNITS: &[(&str, f64)] = &[
    ("gibit", 1_073_741_824.0 / 8.0),
    ("mibit", 1_048_576.0 / 8.0),
    ("kibit", 1024.0 / 8.0),
    ("gbit", 1e9 / 8.0),
    ("mbit", 1e6 / 8.0),
    ("kbit", 1e3 / 8.0),
    ("bit", 1.0 / 8.0),
    ("gib", 1_073_741_824.0),
    ("mib", 1_048_576.0),
    ("kib", 1024.0),
    ("gb", 1e9),
    ("mb", 1e6),
    ("kb", 1e3),
    ("b", 1.0),
];

/// Why a rate did not parse; the message says what is accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad rate {0:?}: expected a number with a unit (10MiB/s, 500KB/s, 80mbit, 2gbps), 0 to pause, or unlimited"
)]
pub struct ParseLimitError(String);

impl FromStr for Limit {
    type Err = ParseLimitError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || ParseLimitError(text.to_owned());
        let t = text.trim().to_ascii_lowercase().replace(' ', "");
        if matches!(t.as_str(), "unlimited" | "none" | "off" | "inf") {
            return Ok(Self::Unlimited);
        }
        // `mbps`/`kbps`/`gbps` are bits, as on every network spec sheet; `MB/s` is bytes.
        let t = match t.strip_suffix("bps") {
            Some(stem) => format!("{stem}bit"),
            None => t
                .strip_suffix("/s")
                .or_else(|| t.strip_suffix("ps"))
                .unwrap_or(&t)
                .to_owned(),
        };
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let value: f64 = number.parse().map_err(|_| bad())?;
        let per_unit = if unit.is_empty() {
            1.0
        } else {
            UNITS
                .iter()
                .find(|(suffix, _)| *suffix == unit)
                .map(|&(_, bytes)| bytes)
                .ok_or_else(bad)?
        };
        let bytes = (value * per_unit).round();
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
            return Err(bad());
        }
        Ok(Self::BytesPerSec(bytes as u64))
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = match *self {
            Self::Unlimited => return f.write_str("unlimited"),
            Self::BytesPerSec(0) => return f.write_str("0"),
            Self::BytesPerSec(n) => n,
        };
        // The largest unit that says it exactly, so that the text parses back to the same rate.
        for (unit, size) in [
            ("GiB", 1u64 << 30),
            ("GB", 1_000_000_000),
            ("MiB", 1 << 20),
            ("MB", 1_000_000),
            ("KiB", 1 << 10),
            ("KB", 1000),
        ] {
            if n % size == 0 {
                return write!(f, "{}{unit}/s", n / size);
            }
        }
        write!(f, "{n}B/s")
    }
}

impl serde::Serialize for Limit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Limit {
    /// A string (`"10MiB/s"`, `"unlimited"`) or a plain number of bytes per second.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(n) => Ok(Self::BytesPerSec(n)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Limit {
        s.parse().unwrap()
    }

    #[test]
    fn the_forms_users_write() {
        assert_eq!(parse("10MiB/s"), Limit::BytesPerSec(10 * 1024 * 1024));
        assert_eq!(parse("500KB/s"), Limit::BytesPerSec(500_000));
        assert_eq!(parse("80mbit"), Limit::BytesPerSec(10_000_000));
        assert_eq!(parse("80Mbps"), Limit::BytesPerSec(10_000_000));
        assert_eq!(parse("1.5 MB/s"), Limit::BytesPerSec(1_500_000));
        assert_eq!(parse("2048"), Limit::BytesPerSec(2048));
        assert_eq!(parse("128kbit"), Limit::BytesPerSec(16_000));
        assert_eq!(parse("0"), Limit::PAUSED);
        assert_eq!(parse("unlimited"), Limit::Unlimited);
        assert_eq!(parse("OFF"), Limit::Unlimited);
        for bad in [
            "",
            "fast",
            "10 parsecs",
            "-5MB/s",
            "1e999MB",
            "MB/s",
            "1.2.3KB",
        ] {
            assert!(bad.parse::<Limit>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn display_parses_back() {
        for n in [
            1,
            999,
            1000,
            1024,
            1_500_000,
            10_485_760,
            6_250_000,
            3 << 30,
        ] {
            let l = Limit::BytesPerSec(n);
            assert_eq!(parse(&l.to_string()), l, "{l}");
        }
        assert_eq!(Limit::BytesPerSec(10_485_760).to_string(), "10MiB/s");
        assert_eq!(Limit::BytesPerSec(500_000).to_string(), "500KB/s");
        assert_eq!(Limit::Unlimited.to_string(), "unlimited");
    }

    #[test]
    fn min_and_serde() {
        let a = Limit::BytesPerSec(5);
        assert_eq!(a.min(Limit::Unlimited), a);
        assert_eq!(Limit::Unlimited.min(Limit::PAUSED), Limit::PAUSED);
        let json = serde_json::to_string(&Limit::BytesPerSec(1_000_000)).unwrap();
        assert_eq!(json, "\"1MB/s\"");
        let back: Limit = serde_json::from_str("1048576").unwrap();
        assert_eq!(back, Limit::BytesPerSec(1 << 20));
        assert!(serde_json::from_str::<Limit>("\"lots\"").is_err());
    }
}
