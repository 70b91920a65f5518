//! Keeping the key out of crash dumps: at start, before any key exists, certboot makes itself
//! non-dumpable (`PR_SET_DUMPABLE` 0: no core file, and other processes of the same user, such
//! as the app in a shared PID namespace, cannot ptrace it or read its memory through /proc) and
//! sets `RLIMIT_CORE` to 0 (soft and hard), so a crash cannot write the key to a core file.

use std::io;

use rustix::process::{DumpableBehavior, Resource, Rlimit};

/// Makes this process non-dumpable and forbids core files. Failure is reported, not fatal: the
/// caller logs it (certboot still never writes the key anywhere but `key.pem`).
pub fn forbid_core_dumps() -> io::Result<()> {
    rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable)?;
    let none = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    rustix::process::setrlimit(Resource::Core, none)?;
    Ok(())
}

/// Whether this process is dumpable, and its core-file limit (soft, hard; `u64::MAX` for
/// unlimited).
pub fn dump_state() -> (bool, u64, u64) {
    let dumpable = !matches!(
        rustix::process::dumpable_behavior(),
        Ok(DumpableBehavior::NotDumpable)
    );
    let limit = rustix::process::getrlimit(Resource::Core);
    (
        dumpable,
        limit.current.unwrap_or(u64::MAX),
        limit.maximum.unwrap_or(u64::MAX),
    )
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
