//! A failed file-system step: what certboot was doing, on which path, the I/O cause, and what to
//! do about it (a hint computed from that cause).

use std::io;
use std::path::{Path, PathBuf};

use rustix::io::Errno;

use super::dirfd::Refusal;

/// The hint when something other than certboot's own files sits in the directory.
const PLANTED: &str = "Something other than certboot changed CERTBOOT_CERT_DIR (a symlink, FIFO or other file where certboot keeps its own): \
     certboot never follows or reads such entries. Mount the volume readOnly in the app's container so only certboot writes there";

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
    if let Some(refusal) = err.get_ref().and_then(|e| e.downcast_ref::<Refusal>()) {
        return match refusal {
            Refusal::NotDirectory => {
                "Set CERTBOOT_CERT_DIR to the directory itself (not a symlink to it), where an emptyDir is mounted"
            }
            Refusal::Owner { .. } => {
                "Another user owns it: run certboot as the directory's owner, or give it its own emptyDir"
            }
            _ => PLANTED,
        };
    }
    match err.raw_os_error().map(Errno::from_raw_os_error) {
        // O_NOFOLLOW met a symlink, O_DIRECTORY a non-directory, O_EXCL an existing name.
        Some(Errno::LOOP) | Some(Errno::NOTDIR) | Some(Errno::EXIST) | Some(Errno::ISDIR) => PLANTED,
        Some(Errno::ROFS) => "The directory is read-only: mount a writable volume (an emptyDir) at CERTBOOT_CERT_DIR",
        Some(Errno::NOSPC) | Some(Errno::DQUOT) => "The volume is full: free space or raise the emptyDir sizeLimit (a pair needs a few KiB)",
        Some(Errno::ACCESS) | Some(Errno::PERM) => {
            "Permission denied: make the volume writable for certboot's user (runAsUser / fsGroup in the pod's securityContext)"
        }
        Some(Errno::NOENT) => "The directory does not exist: mount a volume at CERTBOOT_CERT_DIR",
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
