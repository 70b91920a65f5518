//! The store's file-system calls relative to a directory file descriptor (through `rustix`, no
//! `unsafe`).
//!
//! The output directory is shared with the app container, which can write to it (often as the
//! same user). Anything reached by path could be swapped under certboot between two calls: a
//! directory for a symlink pointing elsewhere, a file for a FIFO. So the store opens the output
//! directory once (`O_DIRECTORY | O_NOFOLLOW`) and does everything else relative to that
//! descriptor (`openat`, `mkdirat`, `symlinkat`, `renameat`, `unlinkat`, `readlinkat`, `fsync`),
//! each with one plain name (never a path with `/`), never following a symlink it did not
//! resolve itself:
//!
//! - directories are opened `O_DIRECTORY | O_NOFOLLOW`: a symlink or a non-directory in their
//!   place fails (`ELOOP`, `ENOTDIR`);
//! - files are created `O_CREAT | O_EXCL | O_NOFOLLOW`: nothing planted in their place is ever
//!   opened, let alone written;
//! - files are read `O_NOFOLLOW | O_NONBLOCK` (a FIFO opens at once instead of blocking), then
//!   `fstat` must say a regular file of at most [`MAX_READ`] bytes, and at most `MAX_READ + 1`
//!   bytes are read (a file that grows meanwhile is refused, not read without end).
//!
//! Every descriptor is `O_CLOEXEC` and owned by an [`OwnedFd`], so it is closed on every path.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use zeroize::Zeroizing;

/// The largest file certboot reads back from the output directory (1 MiB): a certificate chain
/// is a few KiB; anything bigger was not written by certboot.
pub const MAX_READ: u64 = 1024 * 1024;

/// Why a name in the directory was refused (wrapped in an `io::Error`, see `error.rs`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("it is a {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("it holds more than {} bytes", MAX_READ)]
    TooLarge,
    #[error("it is owned by uid {owner}, not by certboot's uid {euid} (or root)")]
    Owner { owner: u32, euid: u32 },
    #[error("it points to {0:?}, outside certboot's layout")]
    Escapes(String),
    #[error("it is not a symlink, as certboot's layout has it")]
    NotSymlink,
    #[error("it is a symlink or not a directory")]
    NotDirectory,
}

impl From<Refusal> for io::Error {
    fn from(refusal: Refusal) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, refusal)
    }
}

/// What an entry of a directory is (from `fstatat` without following symlinks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    Other,
}

/// An open directory; every operation is relative to it.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Only plain names: no `/`, not `.` or `..`, not empty (a NUL inside is refused by the call:
/// `EINVAL`).
fn plain(name: &str) -> io::Result<&str> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(Refusal::Escapes(name.to_string()).into());
    }
    Ok(name)
}

fn kind_name(file_type: FileType) -> &'static str {
    match file_type {
        FileType::Directory => "directory",
        FileType::Fifo => "FIFO",
        FileType::Symlink => "symlink",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        _ => "regular file",
    }
}

/// The effective uid of this process.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Whether a directory owned by `owner` may be used by a process running as `euid`: its own, or
/// root's (the kubelet creates an `emptyDir` as root, mode 0777).
pub fn owner_ok(owner: u32, euid: u32) -> bool {
    owner == euid || owner == 0
}

impl Dir {
    /// Opens `path` as a directory; its last component must not be a symlink.
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = rustix::fs::open(path, DIR_FLAGS, Mode::empty())?;
        Ok(Dir { fd })
    }

    /// Opens the directory `name` inside this one; a symlink in its place is refused.
    pub fn open_dir(&self, name: &str) -> io::Result<Dir> {
        let fd = rustix::fs::openat(&self.fd, plain(name)?, DIR_FLAGS, Mode::empty())?;
        Ok(Dir { fd })
    }

    /// Refuses this directory unless it belongs to this process's user (or root).
    pub fn check_owner(&self) -> io::Result<()> {
        let st = rustix::fs::fstat(&self.fd)?;
        let euid = euid();
        if owner_ok(st.st_uid, euid) {
            Ok(())
        } else {
            Err(Refusal::Owner {
                owner: st.st_uid,
                euid,
            }
            .into())
        }
    }

    /// Creates the directory `name` with `mode` (less the umask).
    pub fn mkdir(&self, name: &str, mode: u32) -> io::Result<()> {
        rustix::fs::mkdirat(&self.fd, plain(name)?, Mode::from_raw_mode(mode))?;
        Ok(())
    }

    /// Creates the file `name` for writing; fails if anything (file, symlink, FIFO) is there.
    pub fn create_file(&self, name: &str, mode: u32) -> io::Result<File> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, plain(name)?, flags, Mode::from_raw_mode(mode))?;
        Ok(File::from(fd))
    }

    /// Reads the regular file `name` (no symlink, FIFO, device; at most [`MAX_READ`] bytes).
    /// The buffer is zeroized on drop (it may hold a key).
    pub fn read_file(&self, name: &str) -> io::Result<Zeroizing<Vec<u8>>> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, plain(name)?, flags, Mode::empty())?;
        let st = rustix::fs::fstat(&fd)?;
        let file_type = FileType::from_raw_mode(st.st_mode);
        if file_type != FileType::RegularFile {
            return Err(Refusal::NotRegular(kind_name(file_type)).into());
        }
        let size = u64::try_from(st.st_size).map_err(|_| Refusal::TooLarge)?;
        if size > MAX_READ {
            return Err(Refusal::TooLarge.into());
        }
        // size <= MAX_READ (1 MiB), so it fits a usize.
        let mut buf = Zeroizing::new(Vec::with_capacity(size as usize));
        File::from(fd).take(MAX_READ + 1).read_to_end(&mut buf)?;
        if buf.len() as u64 > MAX_READ {
            return Err(Refusal::TooLarge.into());
        }
        Ok(buf)
    }

    /// The target of the symlink `name`; `EINVAL` when `name` is not a symlink.
    pub fn read_link(&self, name: &str) -> io::Result<OsString> {
        let target = rustix::fs::readlinkat(&self.fd, plain(name)?, Vec::new())?;
        Ok(OsString::from_vec(target.into_bytes()))
    }

    /// Creates the symlink `name` → `target`.
    pub fn symlink(&self, target: &str, name: &str) -> io::Result<()> {
        rustix::fs::symlinkat(target, &self.fd, plain(name)?)?;
        Ok(())
    }

    /// Renames `from` onto `to`, both in this directory (atomic replacement of `to`).
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        rustix::fs::renameat(&self.fd, plain(from)?, &self.fd, plain(to)?)?;
        Ok(())
    }

    /// Removes the non-directory `name` (a symlink itself, never its target).
    pub fn unlink(&self, name: &str) -> io::Result<()> {
        rustix::fs::unlinkat(&self.fd, plain(name)?, AtFlags::empty())?;
        Ok(())
    }

    /// Removes `name`: a non-directory, or a directory and what it holds (through descriptors,
    /// never following a symlink; at most `depth` levels deep).
    pub fn remove_all(&self, name: &str, depth: u32) -> io::Result<()> {
        match self.kind(name)? {
            Kind::Other => self.unlink(name),
            Kind::Dir => {
                if depth == 0 {
                    return Err(Errno::NOTEMPTY.into());
                }
                let inner = self.open_dir(name)?;
                for entry in inner.entries()? {
                    if let Some(entry) = entry.to_str() {
                        let _ = inner.remove_all(entry, depth - 1);
                    }
                }
                rustix::fs::unlinkat(&self.fd, plain(name)?, AtFlags::REMOVEDIR)?;
                Ok(())
            }
        }
    }

    /// Whether `name` is a directory (a symlink is not followed).
    pub fn kind(&self, name: &str) -> io::Result<Kind> {
        let st = rustix::fs::statat(&self.fd, plain(name)?, AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                Kind::Dir
            } else {
                Kind::Other
            },
        )
    }

    /// The names in this directory (without `.` and `..`).
    pub fn entries(&self) -> io::Result<Vec<OsString>> {
        // A duplicate (F_DUPFD_CLOEXEC) shares the original's position: rewind it first.
        let mut dir = rustix::fs::Dir::new(self.fd.try_clone()?)?;
        dir.rewind();
        let mut names = Vec::new();
        while let Some(entry) = dir.read() {
            let name = entry?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                names.push(OsString::from_vec(name));
            }
        }
        Ok(names)
    }

    /// fsync(2) on the directory: its entries (new names, renames) reach the disk.
    pub fn sync(&self) -> io::Result<()> {
        rustix::fs::fsync(&self.fd)?;
        Ok(())
    }
}
