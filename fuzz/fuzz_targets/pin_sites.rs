//! `dockhand pin`'s pure part on any text: finding the image sites of a stack file, and
//! rewriting them in place. Nothing may panic; a rewrite must parse again and hold exactly the
//! new values at the same sites.
#![no_main]

use dockhand::pin::{rewrite, sites};
use libfuzzer_sys::fuzz_target;

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(found) = sites(text) else {
        return;
    };
    let edits: Vec<(&dockhand::pin::Site, String)> = found
        .iter()
        .enumerate()
        .map(|(i, s)| (s, format!("registry.example/app{i}:1@{DIGEST}")))
        .collect();
    let Ok(new) = rewrite(text, &edits) else {
        return;
    };
    let again = sites(&new).expect("a rewritten file parses again");
    assert_eq!(again.len(), found.len(), "same image sites after a rewrite");
    for (site, (_, want)) in again.iter().zip(&edits) {
        assert_eq!(&site.image, want, "the new value at {}", site.pointer);
    }
});
