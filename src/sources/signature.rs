//! Signed commits: with an allowed-signers file (the format `git` and `ssh-keygen` use for SSH
//! signatures), a commit is deployed only if it carries an SSH signature by one of those keys.
//! The signature is taken from the commit object (git2) and checked by `ssh-keygen -Y`, the
//! same tool `git verify-commit` uses, in the `git` namespace.
//!
//! The allowed signers live on the host, never in the repository: a commit cannot sign off its
//! own policy.
//!
//! Edge module: git2 object reads and a child process.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use super::SourceError;

/// Who signed `commit` in the repository at `repo`, if the signature verifies against
/// `allowed_signers`.
pub fn verify(repo: &Path, commit: &str, allowed_signers: &Path) -> Result<String, SourceError> {
    let short = &commit[..12.min(commit.len())];
    let refused = |why: String| SourceError::Unsigned {
        commit: short.to_string(),
        why,
    };
    let r = git2::Repository::open(repo).map_err(|source| SourceError::Open {
        location: repo.display().to_string(),
        source,
    })?;
    let oid = git2::Oid::from_str(commit).map_err(|e| refused(e.message().to_string()))?;
    let (signature, signed) = r
        .extract_signature(&oid, None)
        .map_err(|_| refused("it carries no signature".into()))?;
    let signature = signature.as_str().unwrap_or_default().to_string();
    if !signature.contains("BEGIN SSH SIGNATURE") {
        return Err(refused(
            "it is not signed with an SSH key (OpenPGP signatures are not checked)".into(),
        ));
    }
    let sig_file =
        std::env::temp_dir().join(format!("dockhand-{}-{short}.sig", std::process::id()));
    std::fs::write(&sig_file, &signature).map_err(|e| refused(e.to_string()))?;
    let result = check(&sig_file, &signed, allowed_signers);
    let _ = std::fs::remove_file(&sig_file);
    result.map_err(|RunError(why)| refused(why))
}

struct RunError(String);

fn check(sig_file: &Path, signed: &[u8], allowed_signers: &Path) -> Result<String, RunError> {
    let signers = allowed_signers.to_string_lossy();
    let sig = sig_file.to_string_lossy();
    let principals = ssh_keygen(&["-Y", "find-principals", "-f", &signers, "-s", &sig], &[])?
        .map_err(|_| RunError(format!("its key is not in {signers}")))?;
    let Some(principal) = principals.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return Err(RunError(format!("its key is not in {signers}")));
    };
    let verify = [
        "-Y", "verify", "-f", &signers, "-I", principal, "-n", "git", "-s", &sig,
    ];
    ssh_keygen(&verify, signed)?
        .map_err(|e| RunError(format!("the signature by {principal} does not verify: {e}")))?;
    Ok(principal.to_string())
}

/// Runs `ssh-keygen` with `stdin`: its stdout, or what it said when it failed. The outer error
/// is for not being able to run it at all.
fn ssh_keygen(args: &[&str], stdin: &[u8]) -> Result<Result<String, String>, RunError> {
    let mut child = Command::new("ssh-keygen")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            RunError(format!(
                "cannot run ssh-keygen ({e}); install OpenSSH's client to check signatures"
            ))
        })?;
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| RunError(e.to_string()))?;
    Ok(if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    })
}
