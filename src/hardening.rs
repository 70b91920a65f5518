//! Keeping the key out of crash dumps: at start, before any key exists, certboot makes itself
//! non-dumpable (`PR_SET_DUMPABLE` 0: no core file, and other processes of the same user, such
//! as the app in a shared PID namespace, cannot ptrace it or read its memory through /proc) and
//! sets `RLIMIT_CORE` to 0 (soft and hard), so a crash cannot write the key to a core file.

use std::io;

/// Makes this process non-dumpable and forbids core files. Failure is reported, not fatal: the
/// caller logs it (certboot still never writes the key anywhere but `key.pem`).
pub fn forbid_core_dumps() -> io::Result<()> {
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) takes plain integers and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads the rlimit struct we pass by reference, nothing else.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether this process is dumpable, and its core-file limit (soft, hard).
pub fn dump_state() -> (bool, u64, u64) {
    // SAFETY: PR_GET_DUMPABLE takes no pointer; it returns the flag.
    let dumpable = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) } != 0;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass, which lives on our stack.
    unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut limit) };
    (dumpable, limit.rlim_cur, limit.rlim_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run in a child process by the test below: non-dumpability would also apply to every other
    /// test in this process.
    #[test]
    #[ignore = "run in a child process by after_start_the_process_is_not_dumpable_and_writes_no_core"]
    fn child_forbids_core_dumps() {
        forbid_core_dumps().expect("prctl and setrlimit succeed");
        assert_eq!(dump_state(), (false, 0, 0));
    }

    #[test]
    fn after_start_the_process_is_not_dumpable_and_writes_no_core() {
        let exe = std::env::current_exe().expect("the test binary");
        let output = std::process::Command::new(exe)
            .args([
                "--exact",
                "hardening::tests::child_forbids_core_dumps",
                "--ignored",
                "--test-threads=1",
            ])
            .output()
            .expect("the child test runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
