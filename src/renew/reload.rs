//! Telling the app that its certificate changed: a signal to a process found by name.
//!
//! With `shareProcessNamespace: true` the sidecar sees the app's processes in `/proc`. A process
//! matches when its `comm` (the kernel's 15-character name) or the base name of its `argv[0]` equals
//! `CERTBOOT_RELOAD_PROCESS`. Apps that watch their files need none of this.

use std::fs;

use tracing::{info, warn};

/// The signal names `CERTBOOT_RELOAD_SIGNAL` accepts.
pub const SIGNAL_NAMES: &str =
    "SIGHUP, SIGUSR1, SIGUSR2, SIGINT, SIGQUIT, SIGTERM, SIGWINCH (with or without the SIG prefix)";

/// Parses a signal name such as `SIGHUP` or `hup`.
pub fn parse_signal(name: &str) -> Option<i32> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    Some(match bare {
        "HUP" => libc::SIGHUP,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "TERM" => libc::SIGTERM,
        "WINCH" => libc::SIGWINCH,
        _ => return None,
    })
}

/// Sends `signal` to every process named `process` except certboot itself; returns how many.
pub fn notify(process: &str, signal: i32) -> usize {
    let own = std::process::id();
    let mut sent = 0;
    for pid in matching_pids(process).into_iter().filter(|p| *p != own) {
        // SAFETY: kill(2) with a pid read from /proc and a valid signal number has no memory effects.
        let result = unsafe { libc::kill(pid as libc::pid_t, signal) };
        if result == 0 {
            sent += 1;
        } else {
            warn!(
                "could not signal process {pid} ({process}): {}",
                std::io::Error::last_os_error()
            );
        }
    }
    if sent == 0 {
        warn!("no process named {process:?} to signal: is shareProcessNamespace: true set on the pod?");
    } else {
        info!("sent signal {signal} to {sent} process(es) named {process:?}");
    }
    sent
}

fn matching_pids(process: &str) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| process_matches(*pid, process))
        .collect()
}

fn process_matches(pid: u32, wanted: &str) -> bool {
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim_end() == wanted {
        return true;
    }
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    let argv0 = String::from_utf8_lossy(argv0);
    argv0.rsplit('/').next() == Some(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_signal_names() {
        assert_eq!(parse_signal("SIGHUP"), Some(libc::SIGHUP));
        assert_eq!(parse_signal("hup"), Some(libc::SIGHUP));
        assert_eq!(parse_signal("usr2"), Some(libc::SIGUSR2));
        assert_eq!(parse_signal("SIGKILL"), None);
        assert_eq!(parse_signal("9"), None);
    }

    #[test]
    fn signals_a_child_found_by_name() {
        // A uniquely named copy of sleep, so no other process on the machine matches.
        let dir = tempfile::tempdir().unwrap();
        let name = format!("cbreload{}", std::process::id() % 100_000);
        let program = dir.path().join(&name);
        std::fs::copy("/bin/sleep", &program).unwrap();
        let mut child = std::process::Command::new(&program)
            .arg("30")
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut sent = 0;
        while sent == 0 && std::time::Instant::now() < deadline {
            sent = notify(&name, libc::SIGTERM);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let status = child.wait().unwrap();
        assert!(sent >= 1);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGTERM));
    }
}
