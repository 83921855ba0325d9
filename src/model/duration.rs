//! Durations as written in the desired state (`500ms`, `1s`, `2m30s`).

use std::time::Duration;

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

    #[test]
    fn parses_compound_durations() {
        assert_eq!(parse("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse("2m30s"), Some(Duration::from_secs(150)));
        assert_eq!(parse("1h"), Some(Duration::from_secs(3600)));
    }

    #[test]
    fn rejects_malformed_durations() {
        for bad in ["", "s", "10", "1x", "1.5s", "-1s", "1s ", "ms1"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
