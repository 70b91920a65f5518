//! A failed file-system step: what certboot was doing, on which path, the I/O cause, and what to
//! do about it (a hint computed from that cause).

use std::io;
use std::path::{Path, PathBuf};

/// A failed file-system step, with the path and what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("could not {action} {}: {source}. {}", .path.display(), hint(.source))]
pub struct StoreError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn hint(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(libc::EROFS) => "The directory is read-only: mount a writable volume (an emptyDir) at CERTBOOT_CERT_DIR",
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => "The volume is full: free space or raise the emptyDir sizeLimit (a pair needs a few KiB)",
        Some(libc::EACCES) | Some(libc::EPERM) => {
            "Permission denied: make the volume writable for certboot's user (runAsUser / fsGroup in the pod's securityContext)"
        }
        Some(libc::ENOENT) => "The directory does not exist: mount a volume at CERTBOOT_CERT_DIR",
        _ => "Check the volume mounted at CERTBOOT_CERT_DIR",
    }
}

pub(super) fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError {
        action,
        path: path.to_path_buf(),
        source,
    }
}
