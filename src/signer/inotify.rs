//! Change notifications for one directory (Linux inotify), as a future: how the signer learns
//! that the kubelet swapped a mounted Secret (it writes a new timestamped directory and renames
//! the `..data` symlink onto it: one `IN_MOVED_TO` in the mount directory) without a timer.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// An inotify watch on one directory.
pub struct DirWatch {
    fd: AsyncFd<OwnedFd>,
}

/// Entries created, moved in or out, written, deleted, or their attributes changed.
const MASK: u32 = libc::IN_CREATE
    | libc::IN_MOVED_TO
    | libc::IN_MOVED_FROM
    | libc::IN_CLOSE_WRITE
    | libc::IN_DELETE
    | libc::IN_ATTRIB;

impl DirWatch {
    /// Watches `dir` (needs a tokio runtime with I/O enabled).
    pub fn new(dir: &Path) -> io::Result<DirWatch> {
        let path = CString::new(dir.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: inotify_init1 takes flags only; a non-negative result is a new descriptor we own.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a valid descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: `fd` is an inotify descriptor and `path` a NUL-terminated string that outlives
        // the call.
        let watch = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), MASK) };
        if watch < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is an open descriptor owned by the OwnedFd moved into the AsyncFd, so it
        // stays open and the same until the AsyncFd is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(DirWatch { fd })
    }

    /// Completes when something in the directory changed since the last call (events that
    /// arrived together are consumed as one change).
    pub async fn changed(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 4096];
        loop {
            let mut guard = self.fd.readable().await?;
            let read = guard.try_io(|fd| {
                // SAFETY: reads at most buf.len() bytes into buf, which lives across the call.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match read {
                Ok(Ok(n)) => return check_events(&buf[..n.min(buf.len())]),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

/// A change, unless the kernel dropped the watch (`IN_IGNORED`: the directory was removed or
/// unmounted), after which no event would ever come: that is an error the caller logs. A queue
/// overflow (`IN_Q_OVERFLOW`) is a change like any other (everything is re-read).
fn check_events(mut events: &[u8]) -> io::Result<()> {
    // struct inotify_event: wd (i32), mask (u32), cookie (u32), len (u32), then `len` name bytes.
    const HEADER: usize = 16;
    while events.len() >= HEADER {
        let word = |at: usize| {
            u32::from_ne_bytes([events[at], events[at + 1], events[at + 2], events[at + 3]])
        };
        let (mask, len) = (word(4), word(12) as usize);
        if mask & libc::IN_IGNORED != 0 {
            return Err(io::Error::other(
                "the kernel dropped the watch: the directory was removed or unmounted",
            ));
        }
        events = events.get(HEADER + len..).unwrap_or_default();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_symlink_swap_like_the_kubelets_is_a_change() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("..v1")).unwrap();
        std::os::unix::fs::symlink("..v1", dir.path().join("..data")).unwrap();
        let mut watch = DirWatch::new(dir.path()).unwrap();
        std::fs::create_dir(dir.path().join("..v2")).unwrap();
        std::os::unix::fs::symlink("..v2", dir.path().join("..data_tmp")).unwrap();
        std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), watch.changed())
            .await
            .expect("a change within 5 s")
            .unwrap();
    }

    #[tokio::test]
    async fn a_removed_directory_is_an_error_not_a_silent_wait() {
        let dir = tempfile::tempdir().unwrap();
        let watched = dir.path().join("secret");
        std::fs::create_dir(&watched).unwrap();
        let mut watch = DirWatch::new(&watched).unwrap();
        std::fs::remove_dir(&watched).unwrap();
        // The removal may come as a change (IN_DELETE_SELF is not asked for) before IN_IGNORED.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let next = tokio::time::timeout(std::time::Duration::from_secs(5), watch.changed())
                .await
                .expect("an event within 5 s");
            if let Err(e) = next {
                assert!(e.to_string().contains("removed or unmounted"), "{e}");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "IN_IGNORED reported");
        }
    }
}
