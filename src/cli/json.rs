//! `--json`: every verb's result as one JSON document on stdout, each shape with an integer
//! `version` (bumped when a field changes meaning or goes away; new fields do not bump it),
//! times in RFC 3339 (UTC) and integer deploy ids. An error under `--json` is the [`error`]
//! object on stdout (the text report still goes to stderr), so stdout always holds exactly one
//! JSON document. The shapes are listed in README's "JSON outputs".

use anyhow::Result;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::reconcile;

/// `plan --json` and `diff --json`.
pub const PLAN_VERSION: u32 = 1;
/// `status --json`.
pub const STATUS_VERSION: u32 = 1;
/// `history --json` (a list) and `history --id N --json` (one deploy).
pub const HISTORY_VERSION: u32 = 1;
/// `validate --json`.
pub const VALIDATE_VERSION: u32 = 1;
/// `apply --json` and `rollback --json`.
pub const DEPLOY_VERSION: u32 = 1;
/// `resume --json`.
pub const RESUME_VERSION: u32 = 1;
/// `pin --json`.
pub const PIN_VERSION: u32 = 1;
/// `schema --json`.
pub const SCHEMA_VERSION: u32 = 1;
/// The error object of any verb under `--json`.
pub const ERROR_VERSION: u32 = 1;

/// `body` (a struct or map) as an object with `version` as its first field.
///
/// # Errors
/// `body` does not serialize to a JSON object.
pub fn versioned<T: Serialize>(version: u32, body: &T) -> Result<Value> {
    let Value::Object(fields) = serde_json::to_value(body)? else {
        anyhow::bail!("a --json document must be an object");
    };
    let mut doc = Map::new();
    doc.insert("version".into(), version.into());
    doc.extend(fields.into_iter().filter(|(k, _)| k != "version"));
    Ok(Value::Object(doc))
}

/// Prints `body` with its `version` as one pretty JSON document on stdout.
///
/// # Errors
/// `body` does not serialize to a JSON object.
pub fn print<T: Serialize>(version: u32, body: &T) -> Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(&versioned(version, body)?)?
    );
    Ok(())
}

/// The error object: `{"version": 1, "error": {"message", "hints", "problems"}}` —
/// `message` is the error chain as one line per paragraph (`what: cause: cause`), `hints` the
/// `hint:` lines without the prefix, `problems` every problem of an invalid desired state
/// (`file`, `line`, `col`, `field`, `message`, `hint`), empty otherwise.
pub fn error(err: &anyhow::Error) -> Value {
    let invalid = reconcile::find::<reconcile::Error>(err.as_ref()).and_then(|e| match e {
        reconcile::Error::Invalid {
            origin,
            diagnostics,
        } => Some((origin, diagnostics)),
        _ => None,
    });
    let (message, hints, problems) = match invalid {
        Some((origin, diagnostics)) => (
            format!("invalid desired state ({origin})"),
            Vec::new(),
            serde_json::to_value(&diagnostics.0).unwrap_or_default(),
        ),
        None => {
            let text = reconcile::report(err.as_ref());
            let (hints, body): (Vec<&str>, Vec<&str>) = text
                .lines()
                .partition(|l| l.trim_start().starts_with("hint:"));
            (
                body.join("\n"),
                hints
                    .iter()
                    .map(|h| {
                        h.trim_start()
                            .trim_start_matches("hint:")
                            .trim()
                            .to_string()
                    })
                    .collect(),
                Value::Array(Vec::new()),
            )
        }
    };
    serde_json::json!({
        "version": ERROR_VERSION,
        "error": {
            "message": message,
            "hints": hints,
            "problems": problems,
        }
    })
}

/// An error whose JSON document (a result with its `error`) is on stdout already: `main`
/// prints its text report on stderr and no second JSON document.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Printed(pub Box<dyn std::error::Error + Send + Sync + 'static>);

impl Printed {
    pub fn wrap(e: impl Into<anyhow::Error>) -> anyhow::Error {
        anyhow::Error::new(Printed(e.into().into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_comes_first_and_is_not_doubled() {
        let doc = versioned(3, &serde_json::json!({"a": 1, "version": 9})).unwrap();
        assert_eq!(doc.to_string(), r#"{"version":3,"a":1}"#);
        assert!(versioned(1, &[1, 2]).is_err());
    }

    #[test]
    fn an_error_splits_into_message_and_hints() {
        let e = anyhow::anyhow!("no deploy #4 in /x\n  hint: `dockhand history` lists them");
        let doc = error(&e);
        assert_eq!(doc["version"], 1);
        assert_eq!(doc["error"]["message"], "no deploy #4 in /x");
        assert_eq!(doc["error"]["hints"][0], "`dockhand history` lists them");
        assert_eq!(doc["error"]["problems"], serde_json::json!([]));
    }
}
