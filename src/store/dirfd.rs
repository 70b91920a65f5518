//! The only `unsafe` of the store: file-system calls relative to a directory file descriptor.
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

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

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

const DIR_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;

fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Only plain names: no `/`, not `.` or `..`, not empty.
fn plain(name: &str) -> io::Result<CString> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(Refusal::Escapes(name.to_string()).into());
    }
    cstr(OsStr::new(name))
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    let fd = check(fd)?;
    // SAFETY: `fd` was just returned by a successful open call and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fstat(fd: &OwnedFd) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `fd` is a valid open descriptor and `st` points to writable memory of the right size.
    check(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded, so it initialised `st`.
    Ok(unsafe { st.assume_init() })
}

fn kind_name(mode: libc::mode_t) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => "directory",
        libc::S_IFIFO => "FIFO",
        libc::S_IFLNK => "symlink",
        libc::S_IFSOCK => "socket",
        libc::S_IFCHR => "character device",
        libc::S_IFBLK => "block device",
        _ => "regular file",
    }
}

/// The effective uid of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether a directory owned by `owner` may be used by a process running as `euid`: its own, or
/// root's (the kubelet creates an `emptyDir` as root, mode 0777).
pub fn owner_ok(owner: u32, euid: u32) -> bool {
    owner == euid || owner == 0
}

impl Dir {
    /// Opens `path` as a directory; its last component must not be a symlink.
    pub fn open(path: &Path) -> io::Result<Dir> {
        let path = cstr(path.as_os_str())?;
        // SAFETY: `path` is a valid NUL-terminated string.
        let fd = owned(unsafe { libc::open(path.as_ptr(), DIR_FLAGS) })?;
        Ok(Dir { fd })
    }

    /// Opens the directory `name` inside this one; a symlink in its place is refused.
    pub fn open_dir(&self, name: &str) -> io::Result<Dir> {
        let name = plain(name)?;
        // SAFETY: valid descriptor and NUL-terminated name.
        let fd = owned(unsafe { libc::openat(self.fd.as_raw_fd(), name.as_ptr(), DIR_FLAGS) })?;
        Ok(Dir { fd })
    }

    /// Refuses this directory unless it belongs to this process's user (or root).
    pub fn check_owner(&self) -> io::Result<()> {
        let st = fstat(&self.fd)?;
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
        let name = plain(name)?;
        // SAFETY: valid descriptor and NUL-terminated name.
        check(unsafe { libc::mkdirat(self.fd.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) })
            .map(drop)
    }

    /// Creates the file `name` for writing; fails if anything (file, symlink, FIFO) is there.
    pub fn create_file(&self, name: &str, mode: u32) -> io::Result<File> {
        let name = plain(name)?;
        let flags =
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: valid descriptor and NUL-terminated name; the mode is passed as the variadic int.
        let fd = owned(unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                name.as_ptr(),
                flags,
                mode as libc::c_uint,
            )
        })?;
        Ok(File::from(fd))
    }

    /// Reads the regular file `name` (no symlink, FIFO, device; at most [`MAX_READ`] bytes).
    /// The buffer is zeroized on drop (it may hold a key).
    pub fn read_file(&self, name: &str) -> io::Result<Zeroizing<Vec<u8>>> {
        let name = plain(name)?;
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
        // SAFETY: valid descriptor and NUL-terminated name.
        let fd = owned(unsafe { libc::openat(self.fd.as_raw_fd(), name.as_ptr(), flags) })?;
        let st = fstat(&fd)?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(Refusal::NotRegular(kind_name(st.st_mode)).into());
        }
        if st.st_size < 0 || st.st_size as u64 > MAX_READ {
            return Err(Refusal::TooLarge.into());
        }
        let mut buf = Zeroizing::new(Vec::with_capacity(st.st_size as usize));
        File::from(fd).take(MAX_READ + 1).read_to_end(&mut buf)?;
        if buf.len() as u64 > MAX_READ {
            return Err(Refusal::TooLarge.into());
        }
        Ok(buf)
    }

    /// The target of the symlink `name`; `EINVAL` when `name` is not a symlink.
    pub fn read_link(&self, name: &str) -> io::Result<OsString> {
        let name = plain(name)?;
        let mut buf = vec![0u8; libc::PATH_MAX as usize];
        // SAFETY: valid descriptor, NUL-terminated name, and `buf` is writable for its length.
        let n = unsafe {
            libc::readlinkat(
                self.fd.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        buf.truncate(n as usize);
        Ok(OsString::from_vec(buf))
    }

    /// Creates the symlink `name` → `target`.
    pub fn symlink(&self, target: &str, name: &str) -> io::Result<()> {
        let name = plain(name)?;
        let target = cstr(OsStr::new(target))?;
        // SAFETY: valid descriptor and NUL-terminated strings.
        check(unsafe { libc::symlinkat(target.as_ptr(), self.fd.as_raw_fd(), name.as_ptr()) })
            .map(drop)
    }

    /// Renames `from` onto `to`, both in this directory (atomic replacement of `to`).
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (from, to) = (plain(from)?, plain(to)?);
        let fd = self.fd.as_raw_fd();
        // SAFETY: valid descriptor and NUL-terminated names.
        check(unsafe { libc::renameat(fd, from.as_ptr(), fd, to.as_ptr()) }).map(drop)
    }

    /// Removes the non-directory `name` (a symlink itself, never its target).
    pub fn unlink(&self, name: &str) -> io::Result<()> {
        let name = plain(name)?;
        // SAFETY: valid descriptor and NUL-terminated name.
        check(unsafe { libc::unlinkat(self.fd.as_raw_fd(), name.as_ptr(), 0) }).map(drop)
    }

    /// Removes `name`: a non-directory, or a directory and what it holds (through descriptors,
    /// never following a symlink; at most `depth` levels deep).
    pub fn remove_all(&self, name: &str, depth: u32) -> io::Result<()> {
        match self.kind(name)? {
            Kind::Other => self.unlink(name),
            Kind::Dir => {
                if depth == 0 {
                    return Err(io::Error::from_raw_os_error(libc::ENOTEMPTY));
                }
                let inner = self.open_dir(name)?;
                for entry in inner.entries()? {
                    if let Some(entry) = entry.to_str() {
                        let _ = inner.remove_all(entry, depth - 1);
                    }
                }
                let c = plain(name)?;
                // SAFETY: valid descriptor and NUL-terminated name.
                check(unsafe {
                    libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), libc::AT_REMOVEDIR)
                })
                .map(drop)
            }
        }
    }

    /// Whether `name` is a directory (a symlink is not followed).
    pub fn kind(&self, name: &str) -> io::Result<Kind> {
        let c = plain(name)?;
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: valid descriptor, NUL-terminated name, writable stat buffer.
        check(unsafe {
            libc::fstatat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                st.as_mut_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })?;
        // SAFETY: fstatat succeeded, so it initialised `st`.
        let st = unsafe { st.assume_init() };
        Ok(if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            Kind::Dir
        } else {
            Kind::Other
        })
    }

    /// The names in this directory (without `.` and `..`).
    pub fn entries(&self) -> io::Result<Vec<OsString>> {
        // fdopendir takes ownership of its descriptor: give it a duplicate.
        // SAFETY: valid descriptor.
        let dup = owned(unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })?;
        let raw = std::os::fd::IntoRawFd::into_raw_fd(dup);
        // SAFETY: `raw` is an open directory descriptor we own; on success the DIR owns it.
        let dirp = unsafe { libc::fdopendir(raw) };
        if dirp.is_null() {
            let err = io::Error::last_os_error();
            // SAFETY: fdopendir failed, so `raw` is still ours to close.
            drop(unsafe { OwnedFd::from_raw_fd(raw) });
            return Err(err);
        }
        // The DIR's position is shared with the original descriptor through the duplicate.
        // SAFETY: `dirp` is a valid DIR stream.
        unsafe { libc::rewinddir(dirp) };
        let mut names = Vec::new();
        loop {
            // SAFETY: `dirp` is a valid DIR stream; the entry is valid until the next call.
            let entry = unsafe { libc::readdir(dirp) };
            if entry.is_null() {
                break;
            }
            // SAFETY: `entry` is non-null and `d_name` is NUL-terminated.
            let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) }.to_bytes();
            if name != b"." && name != b".." {
                names.push(OsString::from_vec(name.to_vec()));
            }
        }
        // SAFETY: `dirp` is a valid DIR stream, closed once (this also closes `raw`).
        unsafe { libc::closedir(dirp) };
        Ok(names)
    }

    /// fsync(2) on the directory: its entries (new names, renames) reach the disk.
    pub fn sync(&self) -> io::Result<()> {
        // SAFETY: valid descriptor.
        check(unsafe { libc::fsync(self.fd.as_raw_fd()) }).map(drop)
    }
}
