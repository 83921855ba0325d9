//! serde checks that mirror the schema's `pattern`, `propertyNames` and `range` keywords, so
//! that the Rust types accept exactly what the generated schema accepts (a test holds both to
//! the same fixtures). Values parsed into a type of their own (durations: `Span`, ports:
//! `PortMapping`) check their pattern in that type's `Deserialize`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;
use serde::de::{Deserialize, Deserializer, Error};

fn matches(pattern: &'static str, cell: &'static OnceLock<Option<Regex>>, text: &str) -> bool {
    cell.get_or_init(|| Regex::new(pattern).ok())
        .as_ref()
        .is_some_and(|r| r.is_match(text))
}

macro_rules! pattern_check {
    ($fn:ident, $opt:ident, $vec:ident, $pat:expr, $what:expr) => {
        #[allow(dead_code)]
        pub fn $fn<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
            static CELL: OnceLock<Option<Regex>> = OnceLock::new();
            let s = String::deserialize(d)?;
            if matches($pat, &CELL, &s) {
                Ok(s)
            } else {
                Err(D::Error::custom(format!("`{s}` is not a valid {}", $what)))
            }
        }
        #[allow(dead_code)]
        pub fn $opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
            static CELL: OnceLock<Option<Regex>> = OnceLock::new();
            match Option::<String>::deserialize(d)? {
                Some(s) if !matches($pat, &CELL, &s) => {
                    Err(D::Error::custom(format!("`{s}` is not a valid {}", $what)))
                }
                other => Ok(other),
            }
        }
        #[allow(dead_code)]
        pub fn $vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
            static CELL: OnceLock<Option<Regex>> = OnceLock::new();
            let v = Vec::<String>::deserialize(d)?;
            match v.iter().find(|s| !matches($pat, &CELL, s)) {
                Some(s) => Err(D::Error::custom(format!("`{s}` is not a valid {}", $what))),
                None => Ok(v),
            }
        }
    };
}

pattern_check!(name, name_opt, name_vec, super::NAME_PATTERN, "name");
pattern_check!(mode, mode_opt, mode_vec, super::MODE_PATTERN, "mode");
pattern_check!(owner, owner_opt, owner_vec, super::OWNER_PATTERN, "owner");
pattern_check!(host, host_opt, host_vec, super::HOST_PATTERN, "host");
pattern_check!(path, path_opt, path_vec, super::PATH_PATTERN, "path prefix");
pattern_check!(
    abs_path,
    abs_path_opt,
    abs_path_vec,
    super::PATH_PATTERN,
    "absolute path"
);
pattern_check!(size, size_opt, size_vec, super::SIZE_PATTERN, "size");
pattern_check!(
    extra_host,
    extra_host_opt,
    extra_host_vec,
    super::EXTRA_HOST_PATTERN,
    "extra host (write HOST:IP, e.g. db.internal:10.0.0.5)"
);
pattern_check!(
    signal,
    signal_opt,
    signal_vec,
    super::SIGNAL_PATTERN,
    "stop signal (a name like `SIGTERM` or a number)"
);

/// A map whose keys must be valid names.
pub fn named_map<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<BTreeMap<String, T>, D::Error> {
    static CELL: OnceLock<Option<Regex>> = OnceLock::new();
    let m = BTreeMap::<String, T>::deserialize(d)?;
    match m.keys().find(|k| !matches(super::NAME_PATTERN, &CELL, k)) {
        Some(k) => Err(D::Error::custom(format!("name `{k}` is not allowed"))),
        None => Ok(m),
    }
}

pub fn version<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    match u32::deserialize(d)? {
        1 => Ok(1),
        v => Err(D::Error::custom(format!(
            "format version {v} is not supported (only 1)"
        ))),
    }
}

pub fn port_number<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    match u16::deserialize(d)? {
        0 => Err(D::Error::custom("port 0 is not allowed")),
        p => Ok(p),
    }
}

pub fn port_number_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    match Option::<u16>::deserialize(d)? {
        Some(0) => Err(D::Error::custom("port 0 is not allowed")),
        p => Ok(p),
    }
}

pub fn retries<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    match Option::<u32>::deserialize(d)? {
        Some(r) if !(1..=1000).contains(&r) => {
            Err(D::Error::custom("retries must be from 1 to 1000"))
        }
        other => Ok(other),
    }
}

pub fn cpus<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Option::<f64>::deserialize(d)? {
        Some(c) if !(0.001..=1024.0).contains(&c) => Err(D::Error::custom(format!(
            "cpus {c} is out of range (from 0.001 to 1024)"
        ))),
        other => Ok(other),
    }
}

pub fn pids_limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<i64>::deserialize(d)? {
        Some(p) if p < 1 => Err(D::Error::custom(format!(
            "pids_limit {p} is out of range (at least 1; leave it out for no limit)"
        ))),
        other => Ok(other),
    }
}
