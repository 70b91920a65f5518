//! The one-line failure cause Kubernetes shows under the container's last state
//! (`kubectl describe pod`: "Message:"). Written to `/dev/termination-log` unless configured
//! otherwise; skipped silently where it cannot be written (outside Kubernetes).

use std::io::Write;
use std::path::Path;

/// Kubernetes keeps at most 4096 bytes of a termination message.
const MAX_BYTES: usize = 4096;

/// Writes `message` (one line, truncated to what Kubernetes keeps) to `path`, ignoring failures.
pub fn write(path: Option<&Path>, message: &str) {
    let Some(path) = path else { return };
    let mut line: String =
        certboot_core::logging::escape_control(&message.replace('\n', " ")).into_owned();
    if line.len() > MAX_BYTES {
        let mut cut = MAX_BYTES;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
    }
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
    {
        let _ = file.write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_line_and_skips_missing_paths() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("termination-log");
        std::fs::write(&file, "").unwrap();
        write(Some(&file), "CSR denied:\nno");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "CSR denied: no");
        write(Some(&dir.path().join("absent/termination-log")), "x");
        write(None, "x");
    }
}
