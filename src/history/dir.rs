//! The state directory and its private files: directory and file modes, the marker key.

use std::path::Path;

use super::{StoreError, DIR_MODE, FILE_MODE, KEY_FILE};

/// Creates the state directory (mode 0700) or tightens an existing one to 0700: it holds the
/// deploy record (hook output, revisions), the marker key and remote mirrors.
///
/// # Errors
/// [`StoreError::Dir`] when it cannot be created or its mode set.
pub fn state_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    let io = |source| StoreError::Dir {
        path: dir.display().to_string(),
        source,
    };
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .map_err(io)?;
    }
    let file = std::fs::File::open(dir).map_err(io)?;
    tighten(&file, DIR_MODE).map_err(io)
}

/// Creates `path` empty with mode 0600 unless it exists, and tightens it to 0600 (it never
/// follows a symlink there, and a FIFO planted there cannot block it).
pub(super) fn private_file(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| StoreError::Dir {
        path: path.display().to_string(),
        source,
    };
    // Read-only when it exists, so that reading the record still works on a read-only file
    // system (tightening an already private file writes nothing).
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
    {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path),
        other => other,
    }
    .map_err(io)?;
    tighten(&file, FILE_MODE).map_err(io)
}

/// Clears every permission bit outside `mode` (group and others), keeping the rest.
pub(super) fn tighten(file: &std::fs::File, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let now = file.metadata()?.permissions().mode() & 0o7777;
    if now & !mode != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(now & mode))?;
    }
    Ok(())
}

/// The host's key for hidden-value markers, in `dir` (the state directory): read, or made on
/// first use from the system's random source (32 bytes, mode 0600, written beside and linked
/// into place, so that two processes starting at once end up with the same key).
///
/// # Errors
/// The state directory or the key cannot be created or read ([`StoreError::Dir`]), or the key
/// file is not a regular file of 32 bytes ([`StoreError::Key`]).
pub fn marker_key(dir: &Path) -> Result<crate::spec::MarkerKey, StoreError> {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    state_dir(dir)?;
    let path = dir.join(KEY_FILE);
    let shown = path.display().to_string();
    let io = |source| StoreError::Dir {
        path: shown.clone(),
        source,
    };
    let open = || {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(&path)
    };
    let file = match open() {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| StoreError::Key {
                path: shown.clone(),
                reason: format!("no random bytes from the system: {e}"),
            })?;
            let tmp = dir.join(format!("{KEY_FILE}.{}.tmp", std::process::id()));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(&tmp)
                .map_err(io)?;
            let written = f.write_all(&bytes).and_then(|()| f.sync_all());
            // A link never replaces: if another process made the key meanwhile, theirs stands.
            let linked = written.and_then(|()| match std::fs::hard_link(&tmp, &path) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
                _ => Ok(()),
            });
            let _ = std::fs::remove_file(&tmp);
            linked.map_err(io)?;
            open().map_err(io)?
        }
        Err(e) => return Err(io(e)),
    };
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() || meta.len() != 32 {
        return Err(StoreError::Key {
            path: shown,
            reason: format!(
                "expected a regular file of 32 bytes, found {} of {} bytes",
                if meta.is_file() {
                    "a file"
                } else {
                    "something else"
                },
                meta.len()
            ),
        });
    }
    tighten(&file, FILE_MODE).map_err(io)?;
    let mut bytes = [0u8; 32];
    (&file).read_exact(&mut bytes).map_err(io)?;
    Ok(crate::spec::MarkerKey::new(bytes))
}
