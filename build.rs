//! Records the git commit the binary is built from, for `--version` and the agent's build info.
//!
//! Sets `DOCKHAND_GIT_COMMIT` (40 hex digits, or empty when unknown) and `DOCKHAND_LONG_VERSION`
//! (`0.1.0 (commit <sha>)`, or `0.1.0 (commit unknown)`). Outside a git checkout (a source
//! tarball, a vendored copy) a packager may set `DOCKHAND_GIT_COMMIT` in the environment;
//! otherwise the commit is unknown and the build goes on.
//!
//! Own code rather than vergen-gitcl: its current line needs Rust 1.95 (dockhand's MSRV is
//! 1.85), and its 1.x line watches `<git-dir>/refs/heads/<branch>`, which in a `git worktree`
//! is not where the branch lives (so a commit there did not rebuild); all that is needed here is
//! one `git rev-parse` and the right files to watch, which `git rev-parse --git-path` names.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// Cargo reruns this script when one of these changes: HEAD (a checkout), the branch's ref
/// file (a commit) and packed-refs (a `git gc`, a fresh clone). A path that does not exist is
/// not named: cargo would rerun the script on every build.
fn watch_git_files() {
    let mut paths = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        paths.push(git(&["rev-parse", "--git-path", &branch]));
    }
    paths.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    for path in paths.into_iter().flatten().map(PathBuf::from) {
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// Whether the crate is the top of a git work tree: a tarball unpacked inside some other
/// repository must not report that repository's commit.
fn in_own_checkout() -> bool {
    let top = git(&["rev-parse", "--show-toplevel"]).map(PathBuf::from);
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    match (top, manifest) {
        (Some(top), Some(manifest)) => {
            top.canonicalize().ok().is_some()
                && top.canonicalize().ok() == manifest.canonicalize().ok()
        }
        _ => false,
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DOCKHAND_GIT_COMMIT");
    let given = std::env::var("DOCKHAND_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty());
    let commit = match given {
        Some(c) => Some(c.trim().to_string()),
        None if in_own_checkout() => {
            watch_git_files();
            git(&["rev-parse", "--verify", "-q", "HEAD"])
                .filter(|c| c.len() >= 40 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        }
        None => None,
    };
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let shown = commit.as_deref().unwrap_or("unknown");
    println!(
        "cargo:rustc-env=DOCKHAND_GIT_COMMIT={}",
        commit.as_deref().unwrap_or("")
    );
    println!("cargo:rustc-env=DOCKHAND_LONG_VERSION={version} (commit {shown})");
}
