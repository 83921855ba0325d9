//! Durations as written in the desired state (`500ms`, `1s`, `2m30s`): parsed once, when
//! the file is loaded, into [`Span`].

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use regex::Regex;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{Deserialize, Deserializer, Error};
use serde::{Serialize, Serializer};

/// A duration of the desired state, parsed at load. Deserializes from the text form
/// [`super::DURATION_PATTERN`] describes (the same check as the schema's `pattern`, plus a
/// total whose milliseconds fit a `u64`, some 584 million years); serializes back to a canonical text form (`1h2m3s400ms`).
/// Its JSON Schema is a plain string, so the field's `pattern` stays in the generated schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(Duration);

impl Span {
    pub fn new(d: Duration) -> Span {
        Span(d)
    }

    pub fn get(self) -> Duration {
        self.0
    }

    /// Whole milliseconds, as the container spec and the release settings hold them. A
    /// loaded span always fits (see [`Span`]'s `Deserialize`); a larger one built with
    /// [`Span::new`] saturates.
    pub fn as_millis(self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX)
    }

    /// Whole seconds, rounded down.
    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }

    /// Whole seconds, rounded up (Docker's stop timeout counts whole seconds): `800ms` is 1 s,
    /// never 0 (which the Engine reads as "SIGKILL at once"); `1500ms` is 2 s; `0s` stays 0.
    pub fn as_secs_ceil(self) -> u64 {
        let secs = self.0.as_secs();
        if self.0.subsec_nanos() > 0 {
            secs.saturating_add(1)
        } else {
            secs
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
        let (m, rest) = (rest / 60_000, rest % 60_000);
        let (s, ms) = (rest / 1_000, rest % 1_000);
        for (n, unit) in [(h, "h"), (m, "m"), (s, "s"), (ms, "ms")] {
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        static PATTERN: OnceLock<Option<Regex>> = OnceLock::new();
        let text = String::deserialize(d)?;
        let shaped = PATTERN
            .get_or_init(|| Regex::new(super::DURATION_PATTERN).ok())
            .as_ref()
            .is_some_and(|r| r.is_match(&text));
        if !shaped {
            return Err(D::Error::custom(format!(
                "`{text}` is not a valid duration"
            )));
        }
        let fits = |d: &Duration| u64::try_from(d.as_millis()).is_ok();
        parse(&text).filter(fits).map(Span).ok_or_else(|| {
            D::Error::custom(format!(
                "`{text}` is longer than any duration dockhand can wait"
            ))
        })
    }
}

impl JsonSchema for Span {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        String::schema_name()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        String::json_schema(generator)
    }
}

/// Parses `1h2m3s400ms`-style durations. Returns `None` for anything else, including an empty
/// string and a unit without a number.
pub fn parse(text: &str) -> Option<Duration> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return None;
        }
        let n: u64 = text[start..i].parse().ok()?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let part = match &text[unit_start..i] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            _ => return None,
        };
        total = total.checked_add(part)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 18, item 4: `800ms` was a stop timeout of 0 (SIGKILL at once).
    #[test]
    fn stop_seconds_round_up_and_never_reach_zero_from_a_positive_span() {
        let secs = |text: &str| Span(parse(text).expect(text)).as_secs_ceil();
        assert_eq!(secs("800ms"), 1);
        assert_eq!(secs("1ms"), 1);
        assert_eq!(secs("1s"), 1);
        assert_eq!(secs("1500ms"), 2);
        assert_eq!(secs("30s"), 30);
        assert_eq!(secs("0s"), 0);
    }

    #[test]
    fn parses_compound_durations() {
        assert_eq!(parse("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse("2m30s"), Some(Duration::from_secs(150)));
        assert_eq!(parse("1h"), Some(Duration::from_secs(3600)));
    }

    #[test]
    fn spans_deserialize_checked_and_print_canonically() {
        let span: Span = serde_json::from_str("\"1h2m3s400ms\"").unwrap();
        assert_eq!(span.get(), Duration::from_millis(3_723_400));
        assert_eq!(span.to_string(), "1h2m3s400ms");
        assert_eq!(span.as_millis(), 3_723_400);
        assert_eq!(span.as_secs(), 3_723);
        assert_eq!(Span::new(Duration::from_secs(90)).to_string(), "1m30s");
        assert_eq!(Span::new(Duration::ZERO).to_string(), "0s");
        let bad = serde_json::from_str::<Span>("\"1.5s\"").unwrap_err();
        assert!(
            bad.to_string().contains("`1.5s` is not a valid duration"),
            "{bad}"
        );
        // Matches the pattern, but the total does not fit: refused, not turned into a default.
        let huge = serde_json::from_str::<Span>("\"99999999999999999999h\"").unwrap_err();
        assert!(
            huge.to_string().contains("longer than any duration"),
            "{huge}"
        );
    }

    #[test]
    fn rejects_malformed_durations() {
        for bad in ["", "s", "10", "1x", "1.5s", "-1s", "1s ", "ms1"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
