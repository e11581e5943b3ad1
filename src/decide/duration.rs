//! Durations as users write them: `30d`, `12h`, `1h30m`, `45s`, units in
//! descending order, each at most once. Hostile input (overflow, empty,
//! unknown units) is an error, never a panic.

use jiff::SignedDuration;
use thiserror::Error;

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    /// Nothing was given.
    #[error("duration is empty; use units d, h, m, s, for example 30d or 1h30m")]
    Empty,
    /// A number without a unit, or a unit without a number.
    #[error("{0:?} is not a duration; use a number followed by d, h, m or s, for example 30d or 1h30m")]
    Malformed(String),
    /// An unknown unit.
    #[error("{0:?} has unknown unit {1:?}; use d, h, m or s")]
    UnknownUnit(String, char),
    /// Units repeated or out of order.
    #[error("{0:?} repeats a unit or lists units out of order; write them as d, h, m, s")]
    Order(String),
    /// Zero.
    #[error("{0:?} is zero; a duration must be positive")]
    Zero(String),
    /// Larger than any meaningful duration.
    #[error("{0:?} is too large")]
    Overflow(String),
}

/// Parses a duration. The result is always positive.
pub fn parse(input: &str) -> Result<SignedDuration, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total: i64 = 0;
    let mut number: Option<i64> = None;
    let mut last_rank = 0u8;
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            let n = number.unwrap_or(0);
            number = Some(
                n.checked_mul(10)
                    .and_then(|n| n.checked_add(i64::from(d)))
                    .ok_or_else(|| DurationError::Overflow(input.to_string()))?,
            );
            continue;
        }
        let (rank, seconds) = match c {
            'd' => (1, 86_400),
            'h' => (2, 3_600),
            'm' => (3, 60),
            's' => (4, 1),
            _ if c.is_alphabetic() => return Err(DurationError::UnknownUnit(input.to_string(), c)),
            _ => return Err(DurationError::Malformed(input.to_string())),
        };
        let n = number
            .take()
            .ok_or_else(|| DurationError::Malformed(input.to_string()))?;
        if rank <= last_rank {
            return Err(DurationError::Order(input.to_string()));
        }
        last_rank = rank;
        total = n
            .checked_mul(seconds)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| DurationError::Overflow(input.to_string()))?;
    }
    if number.is_some() {
        return Err(DurationError::Malformed(input.to_string()));
    }
    // Beyond ~292 years jiff timestamps overflow anyway; refuse early.
    if total > 100 * 365 * 86_400 {
        return Err(DurationError::Overflow(input.to_string()));
    }
    if total == 0 {
        return Err(DurationError::Zero(input.to_string()));
    }
    Ok(SignedDuration::from_secs(total))
}

/// Formats a duration the way users write them (`1d2h`, `45s`).
pub fn format(d: SignedDuration) -> String {
    let mut secs = d.as_secs();
    if secs <= 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_documented_forms() {
        let cases = [
            ("30d", 30 * 86_400),
            ("12h", 12 * 3_600),
            ("1h30m", 5_400),
            ("45s", 45),
            ("1d2h3m4s", 86_400 + 7_200 + 180 + 4),
            (" 90d ", 90 * 86_400),
        ];
        for (input, secs) in cases {
            assert_eq!(parse(input), Ok(SignedDuration::from_secs(secs)), "{input}");
        }
    }

    #[test]
    fn refuses_malformed_input() {
        type Check = fn(&DurationError) -> bool;
        let cases: [(&str, Check); 10] = [
            ("", |e| matches!(e, DurationError::Empty)),
            ("30", |e| matches!(e, DurationError::Malformed(_))),
            ("d", |e| matches!(e, DurationError::Malformed(_))),
            ("1w", |e| matches!(e, DurationError::UnknownUnit(_, 'w'))),
            ("1m1h", |e| matches!(e, DurationError::Order(_))),
            ("1h1h", |e| matches!(e, DurationError::Order(_))),
            ("0s", |e| matches!(e, DurationError::Zero(_))),
            ("-1d", |e| matches!(e, DurationError::Malformed(_))),
            ("99999999999999999999d", |e| matches!(e, DurationError::Overflow(_))),
            ("1.5h", |e| matches!(e, DurationError::Malformed(_))),
        ];
        for (input, check) in cases {
            let err = parse(input).expect_err(input);
            assert!(check(&err), "{input}: {err:?}");
        }
    }

    #[test]
    fn format_round_trips() {
        for s in ["30d", "1h30m", "45s", "1d2h3m4s"] {
            assert_eq!(format(parse(s).unwrap()), s);
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = parse(&s);
        }

        #[test]
        fn formatted_durations_parse_back(secs in 1i64..(100 * 365 * 86_400)) {
            let d = SignedDuration::from_secs(secs);
            prop_assert_eq!(parse(&format(d)), Ok(d));
        }
    }
}
