//! Timestamps as the contract wants them: RFC 3339 in UTC with a `Z`.

use jiff::Timestamp;
use thiserror::Error;

/// Why a timestamp was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TimestampError {
    /// Not RFC 3339 at all.
    #[error("{0:?} is not an RFC 3339 timestamp such as 2026-11-29T10:00:00Z")]
    Malformed(String),
    /// RFC 3339 but with a numeric offset: times are absolute and in UTC.
    #[error("{0:?} must be in UTC with a Z suffix, such as 2026-11-29T10:00:00Z")]
    NotUtc(String),
}

/// Parses an RFC 3339 timestamp ending in `Z`.
pub fn parse(input: &str) -> Result<Timestamp, TimestampError> {
    let s = input.trim();
    if !(s.ends_with('Z') || s.ends_with('z')) {
        return match s.parse::<Timestamp>() {
            Ok(_) => Err(TimestampError::NotUtc(input.to_string())),
            Err(_) => Err(TimestampError::Malformed(input.to_string())),
        };
    }
    s.parse::<Timestamp>()
        .map_err(|_| TimestampError::Malformed(input.to_string()))
}

/// Formats a timestamp as RFC 3339 with `Z`, to the second unless finer
/// precision is needed.
pub fn format(t: Timestamp) -> String {
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_utc_only() {
        assert!(parse("2026-11-29T10:00:00Z").is_ok());
        assert!(parse("2026-11-29T10:00:00.250Z").is_ok());
        assert!(matches!(
            parse("2026-11-29T10:00:00+01:00"),
            Err(TimestampError::NotUtc(_))
        ));
        assert!(matches!(parse("tomorrow"), Err(TimestampError::Malformed(_))));
        assert!(matches!(
            parse("2026-13-29T10:00:00Z"),
            Err(TimestampError::Malformed(_))
        ));
        assert!(matches!(parse(""), Err(TimestampError::Malformed(_))));
    }

    #[test]
    fn formats_with_z() {
        let t = parse("2026-11-29T10:00:00Z").unwrap();
        assert_eq!(format(t), "2026-11-29T10:00:00Z");
    }
}
