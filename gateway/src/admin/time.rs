//! Wall-clock times in the admin API's JSON, as RFC 3339 UTC (`2024-05-01T12:00:00Z`).
//!
//! A small civil-date conversion (Howard Hinnant's `days_from_civil` and its inverse) rather
//! than a date crate: the API writes one format, whole seconds in UTC, and `orca status` reads
//! it back; forty lines cost less than a dependency to audit and keep building on our pinned
//! toolchain.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::units::civil_from_days;

/// A point in time that travels as an RFC 3339 UTC string with whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub SystemTime);

impl Timestamp {
    /// Reads `2024-05-01T12:00:00Z`, with optional fractional seconds (dropped) and a `Z` or
    /// `±HH:MM` offset. `None` when `text` is not such a time or is before 1970.
    pub fn parse(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return None;
        }
        if b[13] != b':' || b[16] != b':' {
            return None;
        }
        let year = number(&b[0..4])?;
        let (month, day) = (number(&b[5..7])?, number(&b[8..10])?);
        let (hour, minute, second) = (
            number(&b[11..13])?,
            number(&b[14..16])?,
            number(&b[17..19])?,
        );
        if !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return None;
        }
        let mut rest = &b[19..];
        if let Some(fraction) = rest.strip_prefix(b".") {
            let digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return None;
            }
            rest = &fraction[digits..];
        }
        let offset = match rest {
            b"Z" | b"z" => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let minutes = number(&[*h1, *h2])? * 60 + number(&[*m1, *m2])?;
                if *sign == b'+' {
                    minutes * 60
                } else {
                    -(minutes * 60)
                }
            }
            _ => return None,
        };
        let days = days_from_civil(year, month, day);
        let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset;
        let secs = u64::try_from(secs).ok()?;
        Some(Self(UNIX_EPOCH + Duration::from_secs(secs)))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Times before 1970 cannot come from a running gateway; show them as the epoch
        // rather than fail a whole listing.
        let secs = self.0.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let secs = i64::try_from(secs).unwrap_or(i64::MAX / 2);
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{text}` is not an RFC 3339 time such as `2024-05-01T12:00:00Z`"
            ))
        })
    }
}

/// ASCII digits as a number; `None` for anything else.
fn number(digits: &[u8]) -> Option<i64> {
    digits.iter().try_fold(0i64, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Timestamp {
        Timestamp(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn known_instants_format_as_rfc_3339_utc() {
        assert_eq!(at(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400).to_string(), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_700_000_000).to_string(), "2023-11-14T22:13:20Z");
        assert_eq!(at(4_107_542_399).to_string(), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn formatting_and_parsing_round_trip() {
        for secs in (0..5_000_000_000u64).step_by(86_399 * 37 + 13) {
            let t = at(secs);
            assert_eq!(Timestamp::parse(&t.to_string()), Some(t), "{t}");
        }
    }

    #[test]
    fn parsing_takes_fractions_and_offsets_and_refuses_nonsense() {
        assert_eq!(
            Timestamp::parse("2023-11-14T22:13:20.123456Z"),
            Some(at(1_700_000_000))
        );
        assert_eq!(
            Timestamp::parse("2023-11-15T00:13:20+02:00"),
            Some(at(1_700_000_000))
        );
        for bad in [
            "",
            "2023-11-14",
            "2023-13-14T22:13:20Z",
            "2023-02-29T00:00:00Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:13:20",
            "2023-11-14T22:13:20.Z",
            "1969-12-31T23:59:59Z",
            "2023-1a-14T22:13:20Z",
        ] {
            assert_eq!(Timestamp::parse(bad), None, "{bad:?} should be refused");
        }
    }

    #[test]
    fn timestamps_travel_as_json_strings() {
        let json = serde_json::to_string(&at(1_700_000_000)).unwrap();
        assert_eq!(json, "\"2023-11-14T22:13:20Z\"");
        assert_eq!(
            serde_json::from_str::<Timestamp>(&json).unwrap(),
            at(1_700_000_000)
        );
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
    }
}
