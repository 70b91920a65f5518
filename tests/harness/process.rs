//! Child processes of the control plane (etcd, kube-apiserver, kube-controller-manager).
//!
//! Every child gets `PR_SET_PDEATHSIG=SIGKILL`, so it dies with the test process even when that
//! process is killed outright. The death signal fires when the *thread* that forked the child
//! exits, so all children are forked by one dedicated thread that lives as long as the process
//! (tokio's blocking-pool threads or a finished test's thread would kill them early).
//! A [`Component`] kills its process on drop (also while a panicking test unwinds).
//! Output (stdout and stderr) goes to one log file per component, appended across restarts.

use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

/// One control-plane binary: how to start it, and the running process if any.
pub struct Component {
    name: &'static str,
    program: PathBuf,
    args: Vec<OsString>,
    log_path: PathBuf,
    child: Option<Child>,
}

impl Component {
    /// Describes a component; nothing runs until [`Component::start`].
    pub fn new(
        name: &'static str,
        program: PathBuf,
        args: Vec<OsString>,
        log_path: PathBuf,
    ) -> Self {
        Component {
            name,
            program,
            args,
            log_path,
            child: None,
        }
    }

    /// The component's name, as used in messages.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The log file holding the component's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The running process's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the process with the same program and flags as before. Panics if it is running.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.log_path.display()));
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("duplicate the log file handle"))
            .stderr(log);
        let child = spawn_with_death_signal(command)
            .unwrap_or_else(|e| panic!("start {} ({}): {e}", self.name, self.program.display()));
        self.child = Some(child);
    }

    /// Kills the process (SIGKILL) and reaps it. Does nothing if it is not running.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGSTOP: the process keeps its sockets but answers nothing. Returns once the kernel
    /// reports the process stopped (state `T` in /proc), so callers never race the signal.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
        let Some(pid) = self.pid() else { return };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The state follows the parenthesised command name: "pid (comm) T ...".
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next());
            if state == Some("T") {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} did not stop after SIGSTOP: {stat}",
                self.name
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Sends SIGCONT after [`Component::pause`].
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// `Some(status)` if the process was started and has exited since.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        child.try_wait().expect("query child status")
    }

    /// An error with the log tail if the process has exited.
    pub fn check_running(&mut self) -> Result<(), String> {
        match self.exit_status() {
            Some(status) => Err(format!(
                "{} exited ({status}) {}",
                self.name,
                self.log_tail_message()
            )),
            None => Ok(()),
        }
    }

    /// "last lines of <log>: ..." — for panic messages.
    pub fn log_tail_message(&self) -> String {
        format!(
            "-- last lines of {} (set CERTBOOT_E2E_KEEP=1 to keep the directory):\n{}",
            self.log_path.display(),
            tail_lines(&self.log_path, 40)
        )
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("{} is not running", self.name));
        // SAFETY: kill(2) on our own child's pid; no memory is shared.
        let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
        assert_eq!(
            rc,
            0,
            "signal {signal} to {}: {}",
            self.name,
            io::Error::last_os_error()
        );
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last `count` lines of a text file (or why it could not be read).
pub fn tail_lines(path: &Path, count: usize) -> String {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) => return format!("(cannot read: {e})"),
    };
    let mut lines = VecDeque::with_capacity(count);
    for line in BufReader::new(file).lines().map_while(Result::ok) {
        if lines.len() == count {
            lines.pop_front();
        }
        lines.push_back(line);
    }
    Vec::from(lines).join("\n")
}

/// A loopback TCP port that was free a moment ago and that this process has not handed out
/// before (so two control planes in one test binary never get the same port).
pub fn free_port() -> u16 {
    static HANDED_OUT: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let handed_out = HANDED_OUT.get_or_init(Default::default);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind a loopback port")
            .port();
        if handed_out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(port)
        {
            return port;
        }
    }
}

type SpawnJob = Box<dyn FnOnce() + Send>;

/// Spawns `command` from the long-lived spawner thread, with SIGKILL as its parent-death signal.
fn spawn_with_death_signal(mut command: Command) -> io::Result<Child> {
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
    // functions (prctl, getppid).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl: then nobody would kill us later.
            if libc::getppid() as u32 != parent {
                return Err(io::Error::other("test process exited during spawn"));
            }
            Ok(())
        });
    }
    let (reply_tx, reply_rx) = mpsc::channel();
    let job: SpawnJob = Box::new(move || {
        let _ = reply_tx.send(command.spawn());
    });
    spawner()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send(job)
        .expect("spawner thread is alive");
    reply_rx.recv().expect("spawner thread replies")
}

/// The process-wide thread that forks all children; it never exits.
fn spawner() -> &'static Mutex<mpsc::Sender<SpawnJob>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("harness-spawner".into())
            .spawn(move || rx.into_iter().for_each(|job| job()))
            .expect("start the spawner thread");
        Mutex::new(tx)
    })
}
