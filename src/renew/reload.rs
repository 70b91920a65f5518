//! Telling the app that its certificate changed: a signal to the processes found by name.
//!
//! With `shareProcessNamespace: true` the sidecar sees the app's processes in `/proc`. A process
//! matches when its `comm` (the kernel's 15-character name) or the base name of its `argv[0]` equals
//! `CERTBOOT_RELOAD_PROCESS`; every matching process but certboot itself is signalled, so a name
//! shared by several processes of the pod (in any container) reaches all of them. Apps that watch
//! their files need none of this.
//!
//! PIDs are reused: between reading `/proc` and signalling, the process found may exit and another
//! may take its PID. So certboot first opens a pidfd (`pidfd_open`), which pins that exact
//! process, then checks the name again through `/proc`, and signals through the pidfd
//! (`pidfd_send_signal`): a process that exited meanwhile is reported as gone, and another process
//! that took its PID is never signalled. Kernels before 5.3 have no pidfds; there certboot falls
//! back to `kill(2)` after the same name check, and says so.
//!
//! SIGTERM, SIGINT, SIGQUIT and SIGKILL end most processes rather than reload them; the
//! configuration refuses them unless `CERTBOOT_RELOAD_ALLOW_TERMINATING=true`.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal};
use tracing::{info, warn};

/// The signal names `CERTBOOT_RELOAD_SIGNAL` accepts.
pub const SIGNAL_NAMES: &str =
    "SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH; SIGINT, SIGQUIT, SIGTERM, SIGKILL only with CERTBOOT_RELOAD_ALLOW_TERMINATING=true (with or without the SIG prefix)";

/// Parses a signal name such as `SIGHUP` or `hup`.
pub fn parse_signal(name: &str) -> Option<i32> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let signal = match bare {
        "HUP" => Signal::HUP,
        "USR1" => Signal::USR1,
        "USR2" => Signal::USR2,
        "INT" => Signal::INT,
        "QUIT" => Signal::QUIT,
        "TERM" => Signal::TERM,
        "KILL" => Signal::KILL,
        "WINCH" => Signal::WINCH,
        _ => return None,
    };
    Some(signal.as_raw())
}

/// True for the signals that end a process by default (refused as reload signals unless allowed).
pub fn is_terminating(signal: i32) -> bool {
    [Signal::TERM, Signal::INT, Signal::QUIT, Signal::KILL]
        .iter()
        .any(|s| s.as_raw() == signal)
}

/// Sends `signal` to every process named `process` except certboot itself; returns how many.
pub fn notify(process: &str, signal: i32) -> usize {
    let own = std::process::id();
    let mut sent = 0;
    for pid in matching_pids(process).into_iter().filter(|p| *p != own) {
        match signal_if_named(pid, process, signal) {
            Ok(true) => sent += 1,
            // Gone, or its PID now belongs to a process of another name: nothing to signal.
            Ok(false) => {}
            Err(e) if e.raw_os_error() == Some(Errno::SRCH.raw_os_error()) => {}
            Err(e) => warn!("could not signal process {pid} ({process}): {e}"),
        }
    }
    if sent == 0 {
        warn!("no process named {process:?} to signal: is shareProcessNamespace: true set on the pod?");
    } else {
        info!("sent signal {signal} to {sent} process(es) named {process:?}");
    }
    sent
}

/// Signals `pid` if, once pinned, it is still named `wanted`. `Ok(false)`: it is not (any more).
fn signal_if_named(pid: u32, wanted: &str, signal: i32) -> io::Result<bool> {
    let signal = Signal::from_named_raw(signal).ok_or(Errno::INVAL)?;
    match Pinned::open(pid) {
        Ok(pinned) => {
            if !process_matches(pid, wanted) {
                return Ok(false);
            }
            pinned.signal(signal)?;
            Ok(true)
        }
        Err(e) if e.raw_os_error() == Some(Errno::NOSYS.raw_os_error()) => {
            warn!("this kernel has no pidfd_open (Linux 5.3+); signalling process {pid} by PID");
            if !process_matches(pid, wanted) {
                return Ok(false);
            }
            rustix::process::kill_process(pid_of(pid)?, signal)?;
            Ok(true)
        }
        Err(e) => Err(e),
    }
}

/// One process, pinned by a pidfd: signals reach it or nobody, whatever happens to its PID.
struct Pinned(OwnedFd);

/// A PID read from `/proc` as the kernel's type (`ESRCH` for 0 or one beyond `i32`).
fn pid_of(pid: u32) -> io::Result<Pid> {
    i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| Errno::SRCH.into())
}

impl Pinned {
    fn open(pid: u32) -> io::Result<Pinned> {
        Ok(Pinned(rustix::process::pidfd_open(
            pid_of(pid)?,
            PidfdFlags::empty(),
        )?))
    }

    fn signal(&self, signal: Signal) -> io::Result<()> {
        rustix::process::pidfd_send_signal(&self.0, signal)?;
        Ok(())
    }
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
    use std::os::unix::process::ExitStatusExt;
    use std::time::{Duration, Instant};

    #[test]
    fn parses_signal_names() {
        assert_eq!(parse_signal("SIGHUP"), Some(Signal::HUP.as_raw()));
        assert_eq!(parse_signal("hup"), Some(Signal::HUP.as_raw()));
        assert_eq!(parse_signal("usr2"), Some(Signal::USR2.as_raw()));
        assert_eq!(parse_signal("SIGKILL"), Some(Signal::KILL.as_raw()));
        assert_eq!(parse_signal("9"), None);
        for terminating in ["TERM", "INT", "QUIT", "KILL"] {
            assert!(is_terminating(parse_signal(terminating).unwrap()));
        }
        for reload in ["HUP", "USR1", "USR2", "WINCH"] {
            assert!(!is_terminating(parse_signal(reload).unwrap()));
        }
    }

    /// A uniquely named copy of sleep, so no other process on the machine matches.
    fn named_sleeper(dir: &std::path::Path, tag: &str) -> (std::process::Child, String) {
        let name = format!("cb{tag}{}", std::process::id() % 100_000);
        let program = dir.join(&name);
        std::fs::copy("/bin/sleep", &program).unwrap();
        let child = std::process::Command::new(&program)
            .arg("30")
            .spawn()
            .unwrap();
        (child, name)
    }

    #[test]
    fn signals_a_child_found_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, name) = named_sleeper(dir.path(), "reload");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut sent = 0;
        while sent == 0 && Instant::now() < deadline {
            sent = notify(&name, Signal::USR1.as_raw());
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = child.wait().unwrap();
        assert!(sent >= 1);
        assert_eq!(status.signal(), Some(Signal::USR1.as_raw()));
    }

    #[test]
    fn a_pinned_process_that_exited_is_never_confused_with_a_pid_reuser() {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, name) = named_sleeper(dir.path(), "pin");
        let pid = child.id();
        let pinned = Pinned::open(pid).expect("pidfd_open (Linux 5.3+)");
        child.kill().unwrap();
        child.wait().unwrap();
        // The PID is free for reuse now; the pidfd still names the exited process only.
        let err = pinned.signal(Signal::USR1).unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(Errno::SRCH.raw_os_error()),
            "{err}"
        );
        // And a process found under another name is left alone.
        let (mut other, _) = named_sleeper(dir.path(), "other");
        assert!(!signal_if_named(other.id(), &name, Signal::USR1.as_raw()).unwrap());
        let _ = other.kill();
        let status = other.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(Signal::KILL.as_raw()),
            "not hit by SIGUSR1"
        );
    }
}
