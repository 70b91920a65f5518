//! Runs the compiled certboot binary as a subprocess, the way a kubelet runs an init container:
//! a clean environment holding only what the pod spec would set, output captured for assertions.

#![allow(dead_code)] // each test crate uses a different part

pub mod tls;

pub mod connect_proxy;

pub mod elf;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a certboot run may take in tests before it counts as hung.
pub const RUN_DEADLINE: Duration = Duration::from_secs(90);

/// A certboot invocation with the Downward API variables a pod would have.
pub struct Certboot {
    binary: PathBuf,
    env: Vec<(String, String)>,
    args: Vec<String>,
    log_dir: PathBuf,
}

/// A finished run.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The exit code; panics with the output when killed by a signal.
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or_else(|| {
            panic!(
                "certboot was killed: {:?}\nstderr:\n{}",
                self.status, self.stderr
            )
        })
    }

    /// Asserts the exit code, printing the output on mismatch.
    pub fn assert_code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code(),
            expected,
            "certboot exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts that certboot's log (stderr) contains `needle`, printing the log otherwise.
    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "certboot's stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }
}

/// A running certboot process.
pub struct Running {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Certboot {
    /// certboot for pod `pod` in `namespace`, talking to the API server through `kubeconfig`,
    /// writing into `cert_dir`.
    pub fn new(kubeconfig: &Path, cert_dir: &Path, namespace: &str, pod: &str) -> Certboot {
        let uid = fake_uid(pod);
        let log_dir = cert_dir.with_extension("logs");
        std::fs::create_dir_all(&log_dir).expect("log dir");
        Certboot {
            binary: PathBuf::from(env!("CARGO_BIN_EXE_certboot")),
            env: vec![
                ("KUBECONFIG".into(), kubeconfig.display().to_string()),
                ("POD_NAME".into(), pod.into()),
                ("POD_NAMESPACE".into(), namespace.into()),
                ("POD_UID".into(), uid),
                ("POD_IP".into(), "10.0.0.7".into()),
                ("CERTBOOT_CERT_DIR".into(), cert_dir.display().to_string()),
                ("CERTBOOT_TERMINATION_LOG".into(), "off".into()),
                // The test signers issue certificates of seconds to minutes, so that renewals
                // happen within a test; certboot refuses those by default (10 minutes).
                ("CERTBOOT_MIN_LIFETIME".into(), "1s".into()),
                (
                    "CERTBOOT_LOG".into(),
                    "certboot=debug,kube_client=off,warn".into(),
                ),
            ],
            args: Vec::new(),
            log_dir,
        }
    }

    /// Sets (or replaces) an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Certboot {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs another build of certboot (e.g. the static release binary).
    pub fn binary(mut self, path: &str) -> Certboot {
        self.binary = PathBuf::from(path);
        self
    }

    /// Removes an environment variable.
    pub fn without(mut self, key: &str) -> Certboot {
        self.env.retain(|(k, _)| k != key);
        self
    }

    /// Adds command-line arguments.
    pub fn args(mut self, args: &[&str]) -> Certboot {
        self.args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    /// The POD_UID this invocation uses.
    pub fn pod_uid(&self) -> String {
        self.var("POD_UID")
    }

    /// The name of the CSR this invocation files first (see [`csr_name`]).
    pub fn csr_name(&self) -> String {
        csr_name(
            &self.var("POD_NAMESPACE"),
            &self.var("POD_NAME"),
            &self.pod_uid(),
        )
    }

    fn var(&self, key: &str) -> String {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// The environment the process gets (and nothing else: like a kubelet, nothing is inherited).
    pub fn vars(&self) -> &[(String, String)] {
        &self.env
    }

    /// `binary` with these arguments and exactly this environment; stdio is the caller's. The one
    /// way tests and the benchmark build a certboot command line.
    pub fn command(&self, binary: &Path) -> Command {
        let mut command = Command::new(binary);
        command
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Starts the process; output goes to files so it survives a kill.
    pub fn spawn(&self) -> Running {
        static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stdout = self.log_dir.join(format!("run{n}.stdout"));
        let stderr = self.log_dir.join(format!("run{n}.stderr"));
        let child = self
            .command(&self.binary)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn certboot");
        Running {
            child,
            stdout,
            stderr,
        }
    }

    /// Runs to completion (bounded by [`RUN_DEADLINE`]).
    pub async fn run(&self) -> Finished {
        self.spawn().finish(RUN_DEADLINE).await
    }
}

impl Running {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Output written so far to stderr.
    pub fn stderr_so_far(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits for the process to exit; kills it and panics with its output after `deadline`.
    pub async fn finish(mut self, deadline: Duration) -> Finished {
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for certboot") {
                return Finished {
                    status,
                    stdout: std::fs::read_to_string(&self.stdout).unwrap_or_default(),
                    stderr: std::fs::read_to_string(&self.stderr).unwrap_or_default(),
                };
            }
            if Instant::now() > until {
                let _ = self.child.kill();
                panic!(
                    "certboot did not exit within {deadline:?}\nstderr:\n{}",
                    self.stderr_so_far()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until stderr contains `needle` (bounded by `deadline`).
    pub async fn wait_for_log(&mut self, needle: &str, deadline: Duration) -> String {
        let until = Instant::now() + deadline;
        loop {
            let text = self.stderr_so_far();
            if text.contains(needle) {
                return text;
            }
            if let Some(status) = self.child.try_wait().expect("wait") {
                panic!("certboot exited ({status:?}) before logging {needle:?}\nstderr:\n{text}");
            }
            assert!(
                Instant::now() < until,
                "certboot did not log {needle:?} within {deadline:?}\nstderr:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends a signal.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, signal);
        }
    }

    /// Kills with SIGKILL and reaps the process.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A stable, UID-shaped value per pod name (the first 6 characters differ per pod).
pub fn fake_uid(pod: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, pod.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Reads the pair certboot wrote and checks that it matches, returning (cert, key) PEM.
pub fn read_pair(cert_dir: &Path) -> (String, String) {
    let cert = std::fs::read_to_string(cert_dir.join("cert.pem")).expect("cert.pem written");
    let key = std::fs::read_to_string(cert_dir.join("key.pem")).expect("key.pem written");
    let now = certboot_core::timefmt::unix_now();
    certboot_core::pki::verify::verify_pair(cert.as_bytes(), &key, now)
        .expect("cert.pem and key.pem match and are valid");
    (cert, key)
}

/// `openssl pkey` reads the PKCS#8 key file at `path` (skipped, with a message, without openssl).
pub fn openssl_reads_key(path: &Path) {
    match Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(path)
        .output()
    {
        Ok(out) => assert!(
            out.status.success() && out.stdout.starts_with(b"-----BEGIN PUBLIC KEY-----"),
            "openssl pkey cannot read {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("openssl not run ({e}): the key file's openssl check is skipped"),
    }
}

/// The permission bits of a file (following symlinks).
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

/// Names of the entries in a directory (empty when it does not exist).
pub fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The CSR name certboot files for a pod: `<namespace>:<pod>:<first 6 characters of the pod UID>`.
pub fn csr_name(namespace: &str, pod: &str, uid: &str) -> String {
    let uid6: String = uid.chars().take(6).collect();
    format!("{namespace}:{pod}:{uid6}")
}

/// Asserts that no certificate or key file (or `..data` link) was written to `dir`.
pub fn no_pair(dir: &Path) {
    let names = entries(dir);
    assert!(
        !names.iter().any(|e| e.ends_with(".pem") || e == "..data"),
        "nothing may be written: {names:?}"
    );
}

/// A minimal HTTP/1.1 GET on loopback returning the whole response (status line, headers, body),
/// e.g. certboot's `/metrics` and `/healthz`.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}
