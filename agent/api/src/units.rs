//! Human units used in every experiment and API field: `250ms`, `2m`, `99.9%`, `200/s`,
//! `200-299`. Each type parses from and prints back to the same text, so a value
//! round-trips through YAML, JSON and reports unchanged.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// Why a unit string did not parse; the message says what would be valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnitError(pub String);

/// A duration written with its unit: `250ms`, `1.5s`, `2m`, `1h30m`, `500us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur(pub Duration);

impl Dur {
    pub const ZERO: Dur = Dur(Duration::ZERO);
    pub fn from_millis(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }
    pub fn from_secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }
    pub fn as_duration(self) -> Duration {
        self.0
    }
}

impl From<Duration> for Dur {
    fn from(d: Duration) -> Self {
        Dur(d)
    }
}

const DURATION_HINT: &str =
    "a duration with a unit, like 250ms, 1.5s, 2m or 1h30m (units: ns, us, ms, s, m, h)";

impl FromStr for Dur {
    type Err = UnitError;
    fn from_str(text: &str) -> Result<Self, UnitError> {
        let s = text.trim();
        let bad = || {
            UnitError(format!(
                "invalid duration `{text}`: expected {DURATION_HINT}"
            ))
        };
        if s.is_empty() {
            return Err(bad());
        }
        let mut total_ns: f64 = 0.0;
        let mut rest = s;
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            if num_len == 0 {
                return Err(bad());
            }
            let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
            rest = &rest[num_len..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let scale = match &rest[..unit_len] {
                "ns" => 1.0,
                "us" | "µs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                _ => return Err(bad()),
            };
            rest = &rest[unit_len..];
            total_ns += value * scale;
        }
        if !total_ns.is_finite() || total_ns > u64::MAX as f64 {
            return Err(bad());
        }
        Ok(Dur(Duration::from_nanos(total_ns.round() as u64)))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.as_nanos();
        let (value, unit) = if ns == 0 {
            return f.write_str("0s");
        } else if ns % 3_600_000_000_000 == 0 {
            (ns / 3_600_000_000_000, "h")
        } else if ns % 60_000_000_000 == 0 {
            (ns / 60_000_000_000, "m")
        } else if ns % 1_000_000_000 == 0 {
            (ns / 1_000_000_000, "s")
        } else if ns % 1_000_000 == 0 {
            (ns / 1_000_000, "ms")
        } else if ns % 1_000 == 0 {
            (ns / 1_000, "us")
        } else {
            (ns, "ns")
        };
        write!(f, "{value}{unit}")
    }
}

/// A long span of time in whole days or hours, like `21d` or `12h`: how long a
/// certificate must stay valid. Not a [`Dur`], whose largest unit is the hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Validity(pub Duration);

const VALIDITY_HINT: &str = "a whole number of days or hours, like 21d, 30d or 12h";

impl FromStr for Validity {
    type Err = UnitError;
    fn from_str(text: &str) -> Result<Self, UnitError> {
        let bad = || {
            UnitError(format!(
                "invalid validity `{text}`: expected {VALIDITY_HINT}"
            ))
        };
        let s = text.trim();
        let (digits, secs) = if let Some(d) = s.strip_suffix('d') {
            (d, 86_400)
        } else if let Some(h) = s.strip_suffix('h') {
            (h, 3_600)
        } else {
            return Err(bad());
        };
        let n: u64 = digits.trim().parse().map_err(|_| bad())?;
        n.checked_mul(secs)
            .map(|s| Validity(Duration::from_secs(s)))
            .ok_or_else(bad)
    }
}

impl fmt::Display for Validity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        if secs % 86_400 == 0 {
            write!(f, "{}d", secs / 86_400)
        } else {
            write!(f, "{}h", secs / 3_600)
        }
    }
}

/// A percentage written with `%`: `95%`, `99.9%`. Stored as a fraction of 100.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Percent(pub f64);

impl Percent {
    /// The value as a ratio in 0..=1.
    pub fn ratio(self) -> f64 {
        self.0 / 100.0
    }
}

impl FromStr for Percent {
    type Err = UnitError;
    fn from_str(text: &str) -> Result<Self, UnitError> {
        let bad = || {
            UnitError(format!(
                "invalid percentage `{text}`: expected a number from 0 to 100 followed by %, like 95% or 99.9%"
            ))
        };
        let num = text.trim().strip_suffix('%').ok_or_else(bad)?;
        let value: f64 = num.trim().parse().map_err(|_| bad())?;
        if !(0.0..=100.0).contains(&value) {
            return Err(bad());
        }
        Ok(Percent(value))
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

/// A rate written as count per unit of time: `200/s`, `10k/s`, `600/m`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Rate {
    /// Events per second.
    pub per_second: f64,
}

impl Rate {
    /// The interval between two events.
    pub fn interval(self) -> Duration {
        Duration::from_secs_f64(1.0 / self.per_second)
    }
}

impl FromStr for Rate {
    type Err = UnitError;
    fn from_str(text: &str) -> Result<Self, UnitError> {
        let bad = || {
            UnitError(format!(
                "invalid rate `{text}`: expected a count per unit of time, like 200/s, 10k/s or 600/m (units: s, m, h)"
            ))
        };
        let (count, per) = text.trim().split_once('/').ok_or_else(bad)?;
        let count = count.trim();
        let (digits, mult) = match count.strip_suffix('k') {
            Some(d) => (d, 1e3),
            None => (count, 1.0),
        };
        let n: f64 = digits.parse().map_err(|_| bad())?;
        let secs = match per.trim() {
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        let per_second = n * mult / secs;
        if !per_second.is_finite() || per_second <= 0.0 || per_second > 10_000_000.0 {
            return Err(UnitError(format!(
                "invalid rate `{text}`: must be above 0 and at most 10M/s"
            )));
        }
        Ok(Rate { per_second })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s", self.per_second)
    }
}

/// Accepted HTTP statuses: `200`, `200-299`, or a comma list `200-299,404`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRanges(pub Vec<(u16, u16)>);

impl StatusRanges {
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&status))
    }
}

impl Default for StatusRanges {
    fn default() -> Self {
        StatusRanges(vec![(200, 299)])
    }
}

impl FromStr for StatusRanges {
    type Err = UnitError;
    fn from_str(text: &str) -> Result<Self, UnitError> {
        let bad = || {
            UnitError(format!(
                "invalid status list `{text}`: expected codes from 100 to 599 or ranges, like 200, 200-299 or 200-299,404"
            ))
        };
        let code = |s: &str| -> Result<u16, UnitError> {
            let c: u16 = s.trim().parse().map_err(|_| bad())?;
            if (100..=599).contains(&c) {
                Ok(c)
            } else {
                Err(bad())
            }
        };
        let mut ranges = Vec::new();
        for part in text.split(',') {
            let range = match part.split_once('-') {
                Some((lo, hi)) => (code(lo)?, code(hi)?),
                None => {
                    let c = code(part)?;
                    (c, c)
                }
            };
            if range.0 > range.1 {
                return Err(bad());
            }
            ranges.push(range);
        }
        Ok(StatusRanges(ranges))
    }
}

impl fmt::Display for StatusRanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

/// Serde and JSON Schema glue shared by every unit type: they travel as strings. The
/// pattern is the parser's grammar for editors (the controller's schema tests check the
/// two agree on the syntax); ranges (`101%`, `0/s`) are left to the parser.
macro_rules! string_unit {
    ($ty:ty, $schema_name:literal, $pattern:literal, $desc:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> de::Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($desc)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse().map_err(|e: UnitError| E::custom(e.0))
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$ty, E> {
                        self.visit_str(&v.to_string())
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$ty, E> {
                        self.visit_str(&v.to_string())
                    }
                    fn visit_f64<E: de::Error>(self, v: f64) -> Result<$ty, E> {
                        self.visit_str(&v.to_string())
                    }
                }
                d.deserialize_any(V)
            }
        }
        impl schemars::JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $schema_name.into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "pattern": $pattern,
                    "description": $desc,
                })
            }
        }
    };
}

string_unit!(
    Dur,
    "Duration",
    r"^\s*(([0-9]+\.?[0-9]*|\.[0-9]+)(ns|us|µs|ms|s|m|h))+\s*$",
    "a duration with a unit, like 250ms, 1.5s, 2m or 1h30m"
);
string_unit!(
    Validity,
    "Validity",
    r"^\s*[0-9]+\s*(d|h)\s*$",
    "a whole number of days or hours, like 21d, 30d or 12h"
);
string_unit!(
    Percent,
    "Percent",
    r"^\s*\+?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*%\s*$",
    "a percentage, like 95% or 99.9%"
);
string_unit!(
    Rate,
    "Rate",
    r"^\s*\+?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?k?\s*/\s*(s|m|h)\s*$",
    "a rate, like 200/s, 10k/s or 600/m"
);
string_unit!(
    StatusRanges,
    "StatusRanges",
    r"^\s*[1-5][0-9][0-9](\s*-\s*[1-5][0-9][0-9])?(\s*,\s*[1-5][0-9][0-9](\s*-\s*[1-5][0-9][0-9])?)*\s*$",
    "HTTP status codes or ranges, like 200, 200-299 or 200-299,404"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validities_are_days_or_hours() {
        assert_eq!("21d".parse::<Validity>().unwrap().0.as_secs(), 21 * 86_400);
        assert_eq!("12h".parse::<Validity>().unwrap().to_string(), "12h");
        assert_eq!("48h".parse::<Validity>().unwrap().to_string(), "2d");
        for bad in ["", "21", "1.5d", "3w", "d"] {
            assert!(bad.parse::<Validity>().is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_parse_and_print_back() {
        for (text, ms) in [
            ("250ms", 250),
            ("1.5s", 1500),
            ("2m", 120_000),
            ("1h30m", 5_400_000),
        ] {
            let d: Dur = text.parse().unwrap();
            assert_eq!(d.0, Duration::from_millis(ms), "{text}");
            let again: Dur = d.to_string().parse().unwrap();
            assert_eq!(again, d);
        }
        assert_eq!(
            "500us".parse::<Dur>().unwrap().0,
            Duration::from_micros(500)
        );
        assert_eq!(Dur::from_millis(1500).to_string(), "1500ms");
    }

    #[test]
    fn durations_reject_missing_or_unknown_units() {
        for bad in ["", "10", "ms", "10 parsecs", "1.2.3s", "-5s", "5d"] {
            let err = bad.parse::<Dur>().unwrap_err();
            assert!(err.0.contains("250ms"), "{bad}: {}", err.0);
        }
    }

    #[test]
    fn percent_rate_status() {
        assert_eq!("99.9%".parse::<Percent>().unwrap().0, 99.9);
        assert!("101%".parse::<Percent>().is_err());
        assert!("95".parse::<Percent>().is_err());
        assert_eq!("200/s".parse::<Rate>().unwrap().per_second, 200.0);
        assert_eq!("10k/s".parse::<Rate>().unwrap().per_second, 10_000.0);
        assert_eq!("600/m".parse::<Rate>().unwrap().per_second, 10.0);
        assert!("0/s".parse::<Rate>().is_err());
        assert!("200".parse::<Rate>().is_err());
        let s: StatusRanges = "200-299,404".parse().unwrap();
        assert!(s.contains(204) && s.contains(404) && !s.contains(500));
        assert_eq!(s.to_string(), "200-299,404");
        assert!("299-200".parse::<StatusRanges>().is_err());
        assert!("700".parse::<StatusRanges>().is_err());
    }

    #[test]
    fn units_deserialize_from_json_with_messages() {
        let d: Dur = serde_json::from_str("\"2m\"").unwrap();
        assert_eq!(d, Dur::from_secs(120));
        let err = serde_json::from_str::<Dur>("\"2 minutes\"").unwrap_err();
        assert!(err.to_string().contains("like 250ms"), "{err}");
        // A bare number has no unit and is refused with the same hint.
        let err = serde_json::from_str::<Dur>("5").unwrap_err();
        assert!(err.to_string().contains("invalid duration `5`"), "{err}");
    }
}
