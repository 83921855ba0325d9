//! A problem found in the desired state, with where it is and what to do about it.

use std::fmt;

use serde::Serialize;

use super::yaml::Pos;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Path of the file relative to the desired-state root, e.g. `stacks/demo.yaml`.
    pub file: String,
    pub line: usize,
    pub col: usize,
    /// Field path in dotted form, e.g. `services.web.ports[0]`; empty for the whole file.
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(file: &str, pos: Pos, pointer: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_string(),
            line: pos.line,
            col: pos.col,
            field: dotted(pointer),
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.col)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// Every problem found, in file and line order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn sorted(mut self) -> Self {
        self.0.sort_by(|a, b| {
            (&a.file, a.line, a.col, &a.message).cmp(&(&b.file, b.line, b.col, &b.message))
        });
        self.0.dedup();
        self
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        let n = self.0.len();
        write!(
            f,
            "{n} problem{} found; nothing was changed.",
            if n == 1 { "" } else { "s" }
        )
    }
}

/// `/services/web/ports/0` → `services.web.ports[0]`.
pub fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{token}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&token);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_paths_read_like_yaml() {
        assert_eq!(dotted("/services/web/ports/0"), "services.web.ports[0]");
        assert_eq!(dotted("/labels/a~1b"), "labels.a/b");
        assert_eq!(dotted(""), "");
    }
}
