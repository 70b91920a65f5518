//! Starting certboot processes: timed runs (a thread blocked in `waitpid` per process), peak-RSS
//! runs through a small helper process, and killing whatever is left when the bench ends.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support;

/// Children not yet reaped; killed when the bench ends (also on a panic).
pub(crate) static LIVE: Mutex<Vec<i32>> = Mutex::new(Vec::new());

pub(crate) struct KillLeftovers;

impl Drop for KillLeftovers {
    fn drop(&mut self) {
        for pid in LIVE.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            // SAFETY: kill(2) on a child we spawned and have not reaped (so the pid is ours).
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// First argument that turns this program into [`rss_helper`].
pub(crate) const RSS_HELPER: &str = "--rss-helper";

/// `pod_certificate --rss-helper OUT BINARY`: runs BINARY (environment and stdio inherited),
/// writes its `ru_maxrss` (KiB) into OUT and exits with its code.
///
/// Why a helper: a child's `ru_maxrss` starts from the peak RSS of the address space it was
/// spawned from (exec keeps the old mm's high-water mark), so a child spawned straight from this
/// bench would report at least the bench's own RSS. Spawned from this small fresh process, the
/// floor is the helper's RSS, reported separately as "helper floor" (BINARY = /bin/true).
pub(crate) fn rss_helper(args: &[String]) -> ! {
    let (Some(out), Some(binary)) = (args.first(), args.get(1)) else {
        eprintln!("usage: pod_certificate {RSS_HELPER} OUT BINARY");
        std::process::exit(2);
    };
    let child = Command::new(binary).spawn().expect("spawn");
    let pid = child.id() as i32;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    std::fs::write(out, usage.ru_maxrss.to_string()).expect("write the RSS file");
    let code = if reaped == pid && libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        1
    };
    std::process::exit(code)
}

/// Peak RSS (KiB) of `binary` run with `env`, through [`rss_helper`]; `None` when it failed.
pub(crate) fn peak_rss_kib(
    binary: &Path,
    env: &[(String, String)],
    logs: &Path,
    name: &str,
) -> Option<i64> {
    let out = logs.join(format!("{name}.maxrss"));
    let status = Command::new(std::env::current_exe().ok()?)
        .arg(RSS_HELPER)
        .arg(&out)
        .arg(binary)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(logs.join(format!("{name}.stdout"))).ok()?)
        .stderr(std::fs::File::create(logs.join(format!("{name}.stderr"))).ok()?)
        .status()
        .ok()?;
    let kib = std::fs::read_to_string(&out).ok()?.trim().parse().ok()?;
    status.success().then_some(kib)
}

/// How a certboot process ended.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Exit {
    /// Exit code, or 128 + signal.
    pub(crate) code: i32,
    /// Wall clock (µs since the epoch) right after `wait4` returned.
    pub(crate) at_us: i64,
}

/// A started certboot process.
pub(crate) struct Spawned {
    pub(crate) pid: i32,
    pub(crate) spawned_us: i64,
    pub(crate) exit: mpsc::Receiver<Exit>,
    pub(crate) stderr: PathBuf,
}

pub(crate) fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as i64
}

/// Starts `binary` as `certboot` says (exactly its environment, like a kubelet: nothing
/// inherited); a thread blocks in `waitpid` for it and reports the exit time.
pub(crate) fn spawn_certboot(
    binary: &Path,
    certboot: &support::Certboot,
    logs: &Path,
    name: &str,
) -> Spawned {
    let stdout = logs.join(format!("{name}.stdout"));
    let stderr = logs.join(format!("{name}.stderr"));
    let mut command = certboot.command(binary);
    command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr).expect("stderr file"));
    let spawned_us = now_us();
    let child = command.spawn().expect("spawn certboot");
    let pid = child.id() as i32;
    LIVE.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _child = child; // reaped below with wait4, not through Child
        let mut status = 0;
        // SAFETY: waitpid(2) on our own child.
        let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
        let at_us = now_us();
        LIVE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p| *p != pid);
        let code = if reaped != pid {
            -1
        } else if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        };
        let _ = tx.send(Exit { code, at_us });
    });
    Spawned {
        pid,
        spawned_us,
        exit: rx,
        stderr,
    }
}

impl Spawned {
    /// Waits for the exit; kills the process after `deadline` (the exit then says SIGKILL).
    pub(crate) async fn finish(&self, deadline: Instant) -> Exit {
        let mut killed = false;
        loop {
            match self.exit.try_recv() {
                Ok(exit) => return exit,
                Err(mpsc::TryRecvError::Disconnected) => {
                    return Exit {
                        code: -1,
                        at_us: now_us(),
                    }
                }
                Err(mpsc::TryRecvError::Empty) => {}
            }
            if !killed && Instant::now() > deadline {
                eprintln!(
                    "bench: pid {} still running at its deadline; killing it",
                    self.pid
                );
                // SAFETY: kill(2) on our unreaped child.
                unsafe {
                    libc::kill(self.pid, libc::SIGKILL);
                }
                killed = true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub(crate) fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}
