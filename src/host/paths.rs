//! Symlink-free file operations on host paths: every walk goes from `/` one component at a
//! time with `O_NOFOLLOW`; bounded reads of regular files, bind directories, bind-source
//! re-checks and backup rotation.

use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fstat, fstatat, mkdirat, FileStat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::load::host_policy::HostFileKind;

use super::{kind_of, HostPathError};

pub(super) fn read_nofollow(path: &str, max: u64) -> Result<Vec<u8>, HostPathError> {
    let (parent, name) = open_parent(path)?;
    let st = fstatat(&parent, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
        .map_err(|e| HostPathError::io(path, e))?;
    regular_under(path, &st, max)?;
    let fd = openat(
        &parent,
        name,
        OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_CLOEXEC
            | OFlag::O_NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| nofollow_error(path, &parent, name, e))?;
    // It may have been swapped between the look and the open.
    let st = fstat(&fd).map_err(|e| HostPathError::io(path, e))?;
    regular_under(path, &st, max)?;
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| HostPathError::io(path, e))?;
    if bytes.len() as u64 > max {
        return Err(HostPathError::TooLarge {
            path: path.to_string(),
            size: bytes.len() as u64,
            max,
        });
    }
    Ok(bytes)
}

/// A regular file the operator names (the policy file): size-capped and never a FIFO or
/// device, but links are fine (config management often links it).
pub(super) fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>, HostPathError> {
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display().to_string();
    let m = std::fs::metadata(path).map_err(|e| HostPathError::io(&shown, e))?;
    if !m.is_file() {
        return Err(HostPathError::WrongKind {
            path: shown,
            kind: describe_meta(&m),
            wanted: "a regular file",
        });
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| HostPathError::io(&shown, e))?;
    let mut bytes = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| HostPathError::io(&shown, e))?;
    if bytes.len() as u64 > max {
        return Err(HostPathError::TooLarge {
            path: shown,
            size: bytes.len() as u64,
            max,
        });
    }
    Ok(bytes)
}

fn describe_meta(m: &std::fs::Metadata) -> String {
    match kind_of(m) {
        HostFileKind::Dir => "a directory".into(),
        HostFileKind::Fifo => "a FIFO (named pipe)".into(),
        HostFileKind::CharDevice => "a character device".into(),
        HostFileKind::BlockDevice => "a block device".into(),
        HostFileKind::Socket => "a socket".into(),
        HostFileKind::File { .. } => "a file".into(),
        _ => "something else".into(),
    }
}

fn file_type(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT
}

fn regular_under(path: &str, st: &FileStat, max: u64) -> Result<(), HostPathError> {
    let t = file_type(st);
    if t == SFlag::S_IFLNK {
        return Err(HostPathError::Symlink {
            path: path.to_string(),
            component: path.to_string(),
        });
    }
    if t != SFlag::S_IFREG {
        let kind = match t {
            SFlag::S_IFDIR => "a directory",
            SFlag::S_IFIFO => "a FIFO (named pipe)",
            SFlag::S_IFCHR => "a character device",
            SFlag::S_IFBLK => "a block device",
            SFlag::S_IFSOCK => "a socket",
            _ => "not a regular file",
        };
        return Err(HostPathError::WrongKind {
            path: path.to_string(),
            kind: kind.into(),
            wanted: "a regular file",
        });
    }
    let size = u64::try_from(st.st_size).unwrap_or(0);
    if size > max {
        return Err(HostPathError::TooLarge {
            path: path.to_string(),
            size,
            max,
        });
    }
    Ok(())
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// The components of an absolute path without `.` or `..`.
fn components(path: &str) -> Result<Vec<&OsStr>, HostPathError> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(HostPathError::NotClean {
            path: path.to_string(),
        });
    }
    p.components()
        .filter(|c| *c != Component::RootDir)
        .map(|c| match c {
            Component::Normal(n) => Ok(n),
            _ => Err(HostPathError::NotClean {
                path: path.to_string(),
            }),
        })
        .collect()
}

fn open_root(path: &str) -> Result<OwnedFd, HostPathError> {
    nix::fcntl::open("/", DIR_FLAGS, Mode::empty()).map_err(|e| HostPathError::io(path, e))
}

/// Why an `O_NOFOLLOW` open of `name` in `parent` failed: a link there is named as such
/// (Linux answers `ELOOP`, or `ENOTDIR` when a directory was asked for).
fn nofollow_error(path: &str, parent: &OwnedFd, name: &OsStr, e: Errno) -> HostPathError {
    let is_link = matches!(e, Errno::ELOOP | Errno::ENOTDIR)
        && fstatat(parent, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
            .is_ok_and(|st| file_type(&st) == SFlag::S_IFLNK);
    match e {
        _ if is_link => HostPathError::Symlink {
            path: path.to_string(),
            component: name.to_string_lossy().into_owned(),
        },
        Errno::ENOTDIR => HostPathError::WrongKind {
            path: path.to_string(),
            kind: format!(
                "a path through `{}`, which is not a folder",
                name.to_string_lossy()
            ),
            wanted: "a directory",
        },
        e => HostPathError::io(path, e),
    }
}

/// Opens `dir`'s folders one by one from `/` without following any link.
fn walk(path: &str, names: &[&OsStr]) -> Result<OwnedFd, HostPathError> {
    let mut fd = open_root(path)?;
    for name in names {
        fd = openat(&fd, *name, DIR_FLAGS, Mode::empty())
            .map_err(|e| nofollow_error(path, &fd, name, e))?;
    }
    Ok(fd)
}

/// The folder holding `path` (opened without following links) and `path`'s last name.
fn open_parent(path: &str) -> Result<(OwnedFd, &OsStr), HostPathError> {
    let names = components(path)?;
    let Some((last, folders)) = names.split_last() else {
        return Err(HostPathError::WrongKind {
            path: path.to_string(),
            kind: "the root folder".into(),
            wanted: "a file",
        });
    };
    Ok((walk(path, folders)?, last))
}

/// Opens directory `path` without following any link on the way.
///
/// # Errors
/// A link or a non-directory on the way, or an I/O error (a missing folder: `NotFound`).
pub fn open_dir(path: &str) -> Result<OwnedFd, HostPathError> {
    let names = components(path)?;
    walk(path, &names)
}

/// Creates directory `path` and its missing parents (parents 0777 less the umask, as
/// `mkdir -p`), then applies `mode` (octal text, e.g. `"2775"`) and `owner` (`UID[:GID]`) to
/// it — an existing directory too, so that a fix in git fixes the host. Never through a link.
///
/// # Errors
/// A link or a file on the way, a bad mode or owner, or the system refused.
pub fn ensure_dir(
    path: &str,
    mode: Option<&str>,
    owner: Option<&str>,
) -> Result<(), HostPathError> {
    use std::os::unix::fs::PermissionsExt;
    let names = components(path)?;
    let mut fd = open_root(path)?;
    for name in names {
        fd = match openat(&fd, name, DIR_FLAGS, Mode::empty()) {
            Ok(next) => next,
            Err(Errno::ENOENT) => {
                match mkdirat(&fd, name, Mode::from_bits_truncate(0o777)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(HostPathError::io(path, e)),
                }
                openat(&fd, name, DIR_FLAGS, Mode::empty())
                    .map_err(|e| nofollow_error(path, &fd, name, e))?
            }
            Err(e) => return Err(nofollow_error(path, &fd, name, e)),
        };
    }
    let dir = std::fs::File::from(fd);
    let bad = |what: String| {
        HostPathError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, what),
        )
    };
    if let Some(mode) = mode {
        let bits =
            u32::from_str_radix(mode, 8).map_err(|e| bad(format!("bad mode {mode}: {e}")))?;
        dir.set_permissions(std::fs::Permissions::from_mode(bits))
            .map_err(|e| HostPathError::io(path, e))?;
    }
    if let Some(owner) = owner {
        let parse = |t: &str| {
            t.parse::<u32>()
                .map_err(|e| bad(format!("bad owner {owner}: {e}")))
        };
        let (uid, gid) = match owner.split_once(':') {
            Some((u, g)) => (Some(parse(u)?), Some(parse(g)?)),
            None => (Some(parse(owner)?), None),
        };
        std::os::unix::fs::fchown(&dir, uid, gid).map_err(|e| HostPathError::io(path, e))?;
    }
    Ok(())
}

/// Checks, right before a container is created, that its bind source is still reached without
/// any link (a container may have planted one since the plan checked the path). A missing
/// source is not this check's business (preflight and the Engine report it).
///
/// # Errors
/// [`HostPathError::Symlink`] naming the link, or another [`HostPathError`].
pub fn recheck_bind_source(path: &str) -> Result<(), HostPathError> {
    let (parent, name) = match open_parent(path) {
        Ok(p) => p,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    };
    match fstatat(&parent, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if file_type(&st) == SFlag::S_IFLNK => Err(HostPathError::Symlink {
            path: path.to_string(),
            component: name.to_string_lossy().into_owned(),
        }),
        Ok(_) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(HostPathError::io(path, e)),
    }
}

/// Keeps the newest `keep` regular files directly in `dir` (by modification time, then
/// name) and deletes the others; links, folders and anything else are left alone. The folder
/// is reached without following any link, and each file is removed by name inside it, so a
/// link never leads the deletion elsewhere.
///
/// # Errors
/// A link on the way, `dir` not a directory, or the system refused.
pub fn rotate(dir: &str, keep: usize) -> Result<usize, HostPathError> {
    let fd = open_dir(dir)?;
    let listing = fd.try_clone().map_err(|e| HostPathError::io(dir, e))?;
    let mut d = nix::dir::Dir::from_fd(listing).map_err(|e| HostPathError::io(dir, e))?;
    let mut files: Vec<((i64, i64), Vec<u8>)> = Vec::new();
    for entry in d.iter() {
        let entry = entry.map_err(|e| HostPathError::io(dir, e))?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name = OsStr::from_bytes(name);
        let st = fstatat(&fd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| HostPathError::io(dir, e))?;
        if file_type(&st) == SFlag::S_IFREG {
            files.push(((st.st_mtime, st.st_mtime_nsec), name.as_bytes().to_vec()));
        }
    }
    files.sort_by(|a, b| b.cmp(a));
    let mut removed = 0;
    for (_, name) in files.into_iter().skip(keep) {
        unlinkat(&fd, OsStr::from_bytes(&name), UnlinkatFlags::NoRemoveDir)
            .map_err(|e| HostPathError::io(dir, e))?;
        removed += 1;
    }
    Ok(removed)
}
