//! Env files as `docker compose` reads them (compose-go's dotenv parser, checked value by
//! value against `docker compose config` in tests/env_compose.rs).
//!
//! Written here rather than taken from a dotenv crate: `dotenvy` 0.15 (the maintained one)
//! refuses an unquoted value with a space (`A=two words`, which compose and every earlier
//! dockhand read), keeps no `\t` escape and makes a byte order mark part of the first key, so
//! it does not give compose's values.
//!
//! What compose reads: `#` comment lines, a comment after an unquoted value (` #`, a space
//! first), `export ` before a key, `KEY=value` or `KEY: value`, unquoted values trimmed;
//! single quotes literal; double quotes with the escapes `\n \r \t \a \b \f \v \\ \" \$` (any
//! other backslash kept as written); quoted values may span lines (a certificate); anything
//! after the closing quote on its line ignored; `$VAR`, `${VAR}`, `${VAR:-default}` and
//! `${VAR-default}` in unquoted and double-quoted values, from earlier keys, then the
//! environment, then empty; CRLF line ends; a leading byte order mark.
//!
//! What dockhand refuses by line number, where compose would take something from the shell
//! that runs it: a key without `=` (compose inherits it) and `${VAR:?}`-style forms. The
//! error never carries the line's text, which may hold a secret.

/// An env file line that cannot be read as compose reads it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {why}")]
pub struct EnvSyntax {
    /// 1-based.
    pub line: usize,
    pub why: &'static str,
}

/// The pairs of an env file in file order (see the module docs); `lookup` gives the value of
/// a `${VAR}` the file does not define before its use.
///
/// # Errors
/// [`EnvSyntax`] for the first line that cannot be read.
pub fn parse_with(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, EnvSyntax> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut p = Parser {
        rest: text,
        line: 1,
    };
    let mut out: Vec<(String, String)> = Vec::new();
    loop {
        p.skip_blank_and_comments();
        if p.rest.is_empty() {
            return Ok(out);
        }
        let at = p.line;
        let err = |why| EnvSyntax { line: at, why };
        let key = p.key().map_err(err)?;
        let known = |name: &str| {
            out.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| lookup(name))
        };
        let value = p.value(&known).map_err(err)?;
        out.push((key, value));
    }
}

struct Parser<'a> {
    rest: &'a str,
    /// The line `rest` starts on.
    line: usize,
}

impl<'a> Parser<'a> {
    fn advance(&mut self, n: usize) -> &'a str {
        let (taken, rest) = self.rest.split_at(n);
        self.line += taken.matches('\n').count();
        self.rest = rest;
        taken
    }

    fn skip_blank_and_comments(&mut self) {
        loop {
            let trimmed = self.rest.trim_start();
            self.advance(self.rest.len() - trimmed.len());
            if !self.rest.starts_with('#') {
                return;
            }
            let end = self.rest.find('\n').unwrap_or(self.rest.len());
            self.advance(end);
        }
    }

    /// The key and its `=` (or `:`), and the blanks after it on the line.
    fn key(&mut self) -> Result<String, &'static str> {
        if let Some(after) = self.rest.strip_prefix("export ") {
            self.rest = after.trim_start_matches([' ', '\t']);
        }
        let end = self
            .rest
            .find(['=', ':', '\n'])
            .filter(|&i| !self.rest[i..].starts_with('\n'))
            .ok_or(
                "a key without `=` (compose would take its value from the shell that runs it)",
            )?;
        let key = self.rest[..end].trim_end_matches([' ', '\t']);
        let valid = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '[' | ']'));
        if !valid {
            return Err("a key must be letters, digits and `_ . - [ ]`");
        }
        let key = key.to_string();
        self.advance(end + 1);
        let trimmed = self.rest.trim_start_matches([' ', '\t']);
        self.advance(self.rest.len() - trimmed.len());
        Ok(key)
    }

    fn value(&mut self, known: &dyn Fn(&str) -> Option<String>) -> Result<String, &'static str> {
        let quote = match self.rest.chars().next() {
            Some(q @ ('"' | '\'')) => q,
            _ => {
                let end = self.rest.find('\n').unwrap_or(self.rest.len());
                let line = self.advance(end);
                let line = line.find(" #").map_or(line, |i| &line[..i]);
                return expand(line.trim_end(), known);
            }
        };
        let body = &self.rest[1..];
        let mut escaped = false;
        let close = body.char_indices().find_map(|(i, c)| {
            if quote == '"' && c == '\\' && !escaped {
                escaped = true;
                return None;
            }
            let closes = c == quote && !escaped;
            escaped = false;
            closes.then_some(i)
        });
        let close = close.ok_or("a quote that is never closed")?;
        let raw = &body[..close];
        // Compose ignores the rest of the line after the closing quote.
        let after = &self.rest[close + 2..];
        let end = close + 2 + after.find('\n').unwrap_or(after.len());
        self.advance(end);
        if quote == '\'' {
            return Ok(raw.to_string());
        }
        double_quoted(raw, known)
    }
}

/// Escapes, then variables; an escaped `$` stays a plain `$`.
fn double_quoted(
    raw: &str,
    known: &dyn Fn(&str) -> Option<String>,
) -> Result<String, &'static str> {
    let mut out = String::new();
    let mut plain = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            plain.push(c);
            continue;
        }
        let Some(next) = chars.next() else {
            plain.push('\\');
            break;
        };
        let unescaped = match next {
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'a' => '\u{7}',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'v' => '\u{b}',
            '\\' => '\\',
            '"' => '"',
            '$' => {
                out.push_str(&expand(&plain, known)?);
                plain.clear();
                out.push('$');
                continue;
            }
            other => {
                plain.push('\\');
                other
            }
        };
        plain.push(unescaped);
    }
    out.push_str(&expand(&plain, known)?);
    Ok(out)
}

/// `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`; an unset variable is empty, as
/// compose makes it (with a warning).
fn expand(text: &str, known: &dyn Fn(&str) -> Option<String>) -> Result<String, &'static str> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(inner) = after.strip_prefix('{') {
            let close = inner.find('}').ok_or("a `${` without its `}`")?;
            let expr = &inner[..close];
            let name_end = expr
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(expr.len());
            let (name, op) = expr.split_at(name_end);
            if name.is_empty() {
                return Err("`${}` without a variable name");
            }
            let value = known(name);
            let text = if op.is_empty() {
                value.unwrap_or_default()
            } else if let Some(default) = op.strip_prefix(":-") {
                value
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| default.to_string())
            } else if let Some(default) = op.strip_prefix('-') {
                value.unwrap_or_else(|| default.to_string())
            } else {
                return Err("only `${VAR}`, `${VAR:-default}` and `${VAR-default}` are read");
            };
            out.push_str(&text);
            rest = &inner[close + 1..];
        } else {
            let name_end = after
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if name_end == 0 {
                out.push('$');
            } else {
                out.push_str(&known(&after[..name_end]).unwrap_or_default());
            }
            rest = &after[name_end..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<(String, String)>, EnvSyntax> {
        parse_with(text, &|name| (name == "OUTSIDE").then(|| "out".to_string()))
    }

    #[test]
    fn lines_numbers_count_the_lines_of_multiline_values() {
        let e = parse("A=\"one\ntwo\nthree\"\nB=1\nBARE\n").unwrap_err();
        assert_eq!(e.line, 5);
    }

    #[test]
    fn variables_come_from_earlier_keys_then_the_lookup_then_empty() {
        let got =
            parse("A=1\nB=${A}${OUTSIDE}${NONE}$A\nC=${NONE:-d}${A:-x}\nD=\"\\$A\"\n").unwrap();
        assert_eq!(got[1].1, "1out1");
        assert_eq!(got[2].1, "d1");
        assert_eq!(got[3].1, "$A");
    }

    proptest::proptest! {
        /// Byte offsets never split a character, whatever the file holds.
        #[test]
        fn never_panics(text in "[A-Za-z_=:#'\" \t\r\n\\\\${}é\u{feff}-]{0,64}") {
            let _ = parse(&text);
        }
    }
}
