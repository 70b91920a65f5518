//! Change notifications for one directory (Linux inotify), as a future: how the signer learns
//! that the kubelet swapped a mounted Secret (it writes a new timestamped directory and renames
//! the `..data` symlink onto it: one `IN_MOVED_TO` in the mount directory) without a timer.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, Reader, WatchFlags};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// An inotify watch on one directory.
pub struct DirWatch {
    fd: AsyncFd<OwnedFd>,
}

/// Entries created, moved in or out, written, deleted, or their attributes changed.
const MASK: WatchFlags = WatchFlags::CREATE
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::CLOSE_WRITE)
    .union(WatchFlags::DELETE)
    .union(WatchFlags::ATTRIB);

/// Room for a burst of events (each is 16 bytes and the entry's name).
const BUFFER: usize = 4096;

impl DirWatch {
    /// Watches `dir` (needs a tokio runtime with I/O enabled).
    pub fn new(dir: &Path) -> io::Result<DirWatch> {
        let fd = inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC)?;
        inotify::add_watch(&fd, dir, MASK)?;
        // tokio (1.54+) makes registering a descriptor `unsafe`, for types whose `as_raw_fd` could
        // change or close under it; certboot's only `unsafe`, kept here on purpose.
        // SAFETY: `fd` is an open descriptor owned by the OwnedFd moved into the AsyncFd, so it
        // stays open and the same until the AsyncFd is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(DirWatch { fd })
    }

    /// Completes when something in the directory changed since the last call (events that
    /// arrived together are consumed as one change).
    pub async fn changed(&mut self) -> io::Result<()> {
        let mut buf = [MaybeUninit::<u8>::uninit(); BUFFER];
        loop {
            let mut guard = self.fd.readable().await?;
            // An empty queue reads EAGAIN, which is io::ErrorKind::WouldBlock: try_io then
            // clears the readiness and the loop waits again.
            match guard.try_io(|fd| read_batch(fd.get_ref(), &mut buf)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}

/// Reads the queued events (one `read`): a change, unless the kernel dropped the watch
/// (`IN_IGNORED`: the directory was removed or unmounted), after which no event would ever come:
/// that is an error the caller logs. A queue overflow (`IN_Q_OVERFLOW`) is a change like any
/// other (everything is re-read).
fn read_batch(fd: &OwnedFd, buf: &mut [MaybeUninit<u8>]) -> io::Result<()> {
    let mut reader = Reader::new(fd, buf);
    let mut ignored = false;
    loop {
        ignored |= reader.next()?.events().contains(ReadFlags::IGNORED);
        if reader.is_buffer_empty() {
            break;
        }
    }
    if ignored {
        return Err(io::Error::other(
            "the kernel dropped the watch: the directory was removed or unmounted",
        ));
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
