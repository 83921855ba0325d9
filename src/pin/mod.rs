//! `dockhand pin`: the image references of a stack file, and rewriting them in place.
//!
//! Pure: no I/O. The CLI reads the files, asks the registry (through the Engine) which digest
//! each tag points to, and writes back what [`rewrite`] returns. Only the characters of each
//! image value change: comments, quoting, key order and blank lines stay byte for byte.

use crate::load::yaml::{self, escape_pointer_token};
use crate::model::image::ImageRef;

/// One image reference in a stack file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// JSON pointer of the value, e.g. `/services/web/image`.
    pub pointer: String,
    /// The service it belongs to.
    pub service: String,
    /// The value as written.
    pub image: String,
    /// 1-based line and column of the value.
    pub line: usize,
    pub col: usize,
}

impl Site {
    /// The reference `pin` resolves: the tag as written (`latest` when there is none).
    pub fn tag_ref(&self) -> Option<String> {
        let r = ImageRef::parse(&self.image).ok()?;
        Some(format!(
            "{}:{}",
            r.repository,
            r.tag.as_deref().unwrap_or("latest")
        ))
    }

    /// The pinned digest, if any.
    pub fn digest(&self) -> Option<String> {
        ImageRef::parse(&self.image).ok()?.digest
    }

    /// The value with `digest` pinned, keeping the tag as written.
    pub fn pinned(&self, digest: &str) -> Option<String> {
        let r = ImageRef::parse(&self.image).ok()?;
        Some(match &r.tag {
            Some(t) => format!("{}:{t}@{digest}", r.repository),
            None => format!("{}@{digest}", r.repository),
        })
    }
}

/// The `stack:` name of a stack file's text, if it parses.
pub fn stack_of(text: &str) -> Option<String> {
    let (value, _) = yaml::parse(text).ok()?;
    value.get("stack")?.as_str().map(str::to_string)
}

/// Every image reference of a stack file: services, one-off hook containers and maintenance
/// containers. Files that are not valid YAML yield an error with its position.
pub fn sites(text: &str) -> Result<Vec<Site>, String> {
    let (value, index) = yaml::parse(text)
        .map_err(|e| format!("line {}:{}: {}", e.pos.line, e.pos.col, e.message))?;
    let mut out = Vec::new();
    let Some(services) = value.get("services").and_then(|s| s.as_object()) else {
        return Ok(out);
    };
    for (name, svc) in services {
        let base = format!("/services/{}", escape_pointer_token(name));
        let mut add = |pointer: String, v: Option<&serde_json::Value>| {
            if let Some(image) = v.and_then(|v| v.as_str()) {
                let pos = index.value(&pointer);
                out.push(Site {
                    pointer,
                    service: name.clone(),
                    image: image.to_string(),
                    line: pos.line,
                    col: pos.col,
                });
            }
        };
        add(format!("{base}/image"), svc.get("image"));
        for phase in ["before", "after_start", "after_switch"] {
            let steps = svc
                .pointer(&format!("/hooks/{phase}"))
                .and_then(|s| s.as_array());
            for (i, step) in steps.into_iter().flatten().enumerate() {
                add(format!("{base}/hooks/{phase}/{i}/image"), step.get("image"));
            }
        }
        add(
            format!("{base}/release/maintenance/image"),
            svc.pointer("/release/maintenance/image"),
        );
    }
    Ok(out)
}

/// `text` with each site's value replaced by the new value, keeping its quotes. Refuses (and
/// changes nothing) if a site's text is not where the parser said, or not what it read.
pub fn rewrite(text: &str, edits: &[(&Site, String)]) -> Result<String, String> {
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let mut spans = Vec::new();
    for (site, new) in edits {
        let start = line_starts
            .get(site.line.saturating_sub(1))
            .and_then(|&ls| {
                let line = &text[ls..];
                line.char_indices()
                    .nth(site.col.saturating_sub(1))
                    .map(|(i, _)| ls + i)
            })
            .ok_or_else(|| format!("{} is not at line {}", site.pointer, site.line))?;
        let rest = &text[start..];
        let (from, to) = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let end = rest[1..]
                    .find(q)
                    .ok_or_else(|| format!("unterminated quote at line {}", site.line))?;
                (start + 1, start + 1 + end)
            }
            _ => {
                let end = rest
                    .find(|c: char| c.is_whitespace() || matches!(c, ',' | ']' | '}' | '#'))
                    .unwrap_or(rest.len());
                (start, start + end)
            }
        };
        if text[from..to] != site.image {
            return Err(format!(
                "line {}: found `{}` where `{}` was read; the file was left as it was",
                site.line,
                &text[from..to],
                site.image
            ));
        }
        spans.push((from, to, new.as_str()));
    }
    spans.sort_by_key(|s| s.0);
    let mut out = String::with_capacity(text.len() + 80 * spans.len());
    let mut at = 0;
    for (from, to, new) in spans {
        out.push_str(&text[at..from]);
        out.push_str(new);
        at = to;
    }
    out.push_str(&text[at..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn finds_service_hook_and_maintenance_images_with_positions() {
        let text = "stack: s\n# the web tier\nservices:\n  web:\n    image: r/web:1.0   # pinned by `dockhand pin`\n    hooks:\n      before:\n        - {image: \"r/tool:2\", command: [x]}\n    release:\n      maintenance: {image: 'r/maint:1'}\n";
        let s = sites(text).unwrap();
        let found: Vec<(&str, &str, usize)> = s
            .iter()
            .map(|s| (s.pointer.as_str(), s.image.as_str(), s.line))
            .collect();
        assert_eq!(
            found,
            [
                ("/services/web/image", "r/web:1.0", 5),
                ("/services/web/hooks/before/0/image", "r/tool:2", 8),
                ("/services/web/release/maintenance/image", "r/maint:1", 10),
            ]
        );
    }

    #[test]
    fn rewrite_changes_only_the_values_and_keeps_quotes_and_comments() {
        let text = "stack: s\n# the web tier\nservices:\n  web:\n    image: r/web:1.0   # pinned by `dockhand pin`\n    hooks:\n      before:\n        - {image: \"r/tool:2\", command: [x]}\n    release:\n      maintenance: {image: 'r/maint:1'}\n";
        let s = sites(text).unwrap();
        let edits: Vec<(&Site, String)> = vec![
            (&s[0], s[0].pinned(D1).unwrap()),
            (&s[1], s[1].pinned(D2).unwrap()),
            (&s[2], s[2].pinned(D1).unwrap()),
        ];
        let out = rewrite(text, &edits).unwrap();
        let want = text
            .replace("r/web:1.0", &format!("r/web:1.0@{D1}"))
            .replace("\"r/tool:2\"", &format!("\"r/tool:2@{D2}\""))
            .replace("'r/maint:1'", &format!("'r/maint:1@{D1}'"));
        assert_eq!(out, want);
        // The rewritten file reads back with the new values.
        let again = sites(&out).unwrap();
        assert_eq!(again[0].digest().as_deref(), Some(D1));
        assert_eq!(again[1].digest().as_deref(), Some(D2));
    }

    #[test]
    fn repinning_replaces_the_old_digest() {
        let text = format!("stack: s\nservices:\n  api:\n    image: 127.0.0.1:5000/api:2@{D1}\n");
        let s = sites(&text).unwrap();
        assert_eq!(s[0].tag_ref().as_deref(), Some("127.0.0.1:5000/api:2"));
        let out = rewrite(&text, &[(&s[0], s[0].pinned(D2).unwrap())]).unwrap();
        assert_eq!(out, text.replace(D1, D2));
    }

    #[test]
    fn untagged_images_resolve_latest_and_stay_untagged() {
        let text = "stack: s\nservices:\n  api:\n    image: r/api\n";
        let s = sites(text).unwrap();
        assert_eq!(s[0].tag_ref().as_deref(), Some("r/api:latest"));
        assert_eq!(s[0].pinned(D1).unwrap(), format!("r/api@{D1}"));
    }

    #[test]
    fn a_value_not_where_it_was_read_is_refused() {
        let text = "stack: s\nservices:\n  api:\n    image: r/api:1\n";
        let mut s = sites(text).unwrap();
        s[0].line = 3;
        assert!(rewrite(text, &[(&s[0], "x".into())]).is_err());
    }
}
