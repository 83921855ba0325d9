//! Image references: `registry/repo[:tag][@sha256:<64 hex>]`.

use std::fmt;

use serde::Serialize;

/// A parsed image reference. The digest, when present, is what dockhand pulls and checks; the
/// tag is kept for humans and for `pin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageRef {
    /// Repository including any registry host, e.g. `127.0.0.1:5000/demo/web`.
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<64 lowercase hex>`.
    pub digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    #[error("image reference is empty")]
    Empty,
    #[error("digest `{0}` is not of the form sha256:<64 lowercase hex characters>")]
    BadDigest(String),
    #[error("tag `{0}` is not a valid tag (letters, digits, `_`, `.`, `-`; at most 128)")]
    BadTag(String),
    #[error("repository `{0}` is not a valid repository name")]
    BadRepository(String),
}

impl ImageRef {
    pub fn parse(text: &str) -> Result<ImageRef, ImageRefError> {
        if text.trim().is_empty() {
            return Err(ImageRefError::Empty);
        }
        let (name, digest) = match text.split_once('@') {
            Some((name, digest)) => {
                if !is_sha256_digest(digest) {
                    return Err(ImageRefError::BadDigest(digest.to_string()));
                }
                (name, Some(digest.to_string()))
            }
            None => (text, None),
        };
        // A colon after the last slash separates the tag; one before it is a registry port.
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match name[last_slash..].find(':') {
            Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
            None => (name, None),
        };
        if let Some(tag) = tag {
            let ok = !tag.is_empty()
                && tag.len() <= 128
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
                && !tag.starts_with(['.', '-']);
            if !ok {
                return Err(ImageRefError::BadTag(tag.to_string()));
            }
        }
        let path_ok = |s: &str| {
            !s.is_empty()
                && s.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-')
                })
        };
        let mut parts = repository.split('/').collect::<Vec<_>>();
        // The first component may be a registry host (may hold `:port` and uppercase).
        if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
            parts.remove(0);
        }
        if !parts.iter().all(|p| path_ok(p)) {
            return Err(ImageRefError::BadRepository(repository.to_string()));
        }
        Ok(ImageRef {
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The reference dockhand pulls and creates containers from: `repo@digest` when pinned.
    pub fn pull_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => format!("{}@{}", self.repository, d),
            (None, Some(t)) => format!("{}:{}", self.repository, t),
            (None, None) => format!("{}:latest", self.repository),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

pub fn is_sha256_digest(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_registry_port_tag_and_digest() {
        let r = ImageRef::parse(&format!("127.0.0.1:5000/demo/web:1.4.2@{D}")).unwrap();
        assert_eq!(r.repository, "127.0.0.1:5000/demo/web");
        assert_eq!(r.tag.as_deref(), Some("1.4.2"));
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.pull_ref(), format!("127.0.0.1:5000/demo/web@{D}"));
    }

    #[test]
    fn registry_port_is_not_a_tag() {
        let r = ImageRef::parse("localhost:5000/web").unwrap();
        assert_eq!(r.repository, "localhost:5000/web");
        assert_eq!(r.tag, None);
    }

    #[test]
    fn rejects_bad_digests_tags_and_names() {
        assert!(matches!(
            ImageRef::parse("web@sha256:abc"),
            Err(ImageRefError::BadDigest(_))
        ));
        assert!(matches!(
            ImageRef::parse(&format!("web@{}", D.to_uppercase())),
            Err(ImageRefError::BadDigest(_))
        ));
        assert!(matches!(
            ImageRef::parse("web:bad tag"),
            Err(ImageRefError::BadTag(_))
        ));
        assert!(matches!(
            ImageRef::parse("Web/App:1"),
            Err(ImageRefError::BadRepository(_))
        ));
    }
}
