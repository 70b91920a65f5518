//! The shipped binary, proven: the fully static build from `scripts/build-static.sh` (pointed to by
//! `CERTBOOT_STATIC_BIN`; `.ci/run` builds it and sets it) needs no dynamic loader and no shared
//! library, and issues a certificate end to end from inside an empty root directory, as user
//! 65532, the way it runs in its `FROM scratch` image, within the example manifests' memory limit
//! (peak RSS read with wait4(2), as an init container and as a sidecar). The Dockerfile's own
//! checks are in `tests/dockerfile.rs`.
//!
//! Without `CERTBOOT_STATIC_BIN` the binary tests print SKIPPED; with `CI=true` they fail. The
//! chroot needs root.

mod harness;
mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::ControlPlane;
use support::{fake_uid, http_get, read_pair};

const NS: &str = "default";
const SIGNER: &str = "example.com/static";
/// The user and group of the image (`USER 65532:65532`) and of the example manifests.
const NONROOT: u32 = 65532;

/// The static binary, or `None` (after printing why) when `CERTBOOT_STATIC_BIN` is unset outside CI.
fn static_binary() -> Option<PathBuf> {
    match std::env::var_os("CERTBOOT_STATIC_BIN").filter(|v| !v.is_empty()) {
        Some(path) => {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "CERTBOOT_STATIC_BIN={} is not a file",
                path.display()
            );
            Some(path)
        }
        None if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "CI=true but CERTBOOT_STATIC_BIN is not set: build it with scripts/build-static.sh \
             and export CERTBOOT_STATIC_BIN=<the path it prints> (.ci/run does)"
        ),
        None => {
            eprintln!(
                "SKIPPED static binary: CERTBOOT_STATIC_BIN not set (run: export \
                 CERTBOOT_STATIC_BIN=\"$(scripts/build-static.sh | head -n1)\")"
            );
            None
        }
    }
}

/// The static binary and a control plane, or `None` (after printing why) when either is
/// unavailable; the empty-root tests need root.
async fn binary_and_control_plane() -> Option<(PathBuf, ControlPlane)> {
    let binary = static_binary()?;
    assert_root();
    let cp = ControlPlane::start().await?;
    Some((binary, cp))
}

fn assert_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "the empty-root test uses chroot(2) and needs root");
}

#[test]
fn the_static_binary_needs_no_dynamic_loader_or_shared_library() {
    let Some(binary) = static_binary() else {
        return;
    };
    let elf = std::fs::read(&binary).expect("read the binary");
    let facts = support::elf::read(&elf).expect("the static binary is an ELF file");
    assert!(
        !facts.interpreter,
        "{} has a PT_INTERP (needs a dynamic loader)",
        binary.display()
    );
    assert_eq!(
        facts.needed,
        0,
        "{} has DT_NEEDED entries",
        binary.display()
    );
    // static-pie, not a fixed-address executable: the kernel still loads it at a random address.
    assert!(
        facts.position_independent,
        "{} is not position-independent (ELF type is not ET_DYN): ASLR lost",
        binary.display()
    );
    // Relative relocations packed (-z pack-relative-relocs): a few KiB instead of ~350 KiB of
    // .rela.dyn, applied by glibc's static-pie start-up code.
    assert!(
        facts.relr,
        "{} has no DT_RELR: built without -z pack-relative-relocs",
        binary.display()
    );

    // The same through ldd, as a person would check it, where ldd exists.
    if let Ok(out) = Command::new("ldd").arg(&binary).output() {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("not a dynamic executable") || text.contains("statically linked"),
            "ldd {}: {text}",
            binary.display()
        );
    }
    let size = std::fs::metadata(&binary).expect("stat").len();
    eprintln!(
        "static binary {}: {size} bytes ({:.2} MiB)",
        binary.display(),
        size as f64 / 1048576.0
    );
}

#[tokio::test]
async fn issues_a_certificate_from_an_empty_root_as_user_65532() {
    let Some((binary, cp)) = binary_and_control_plane().await else {
        return;
    };
    let signer = cp.custom_signer(SIGNER, Duration::from_secs(3600));
    let root = EmptyRoot::new(&cp, &binary, cp.url()).await;

    let run = root.run("web-static", &[]).await;
    eprintln!(
        "peak RSS of the static binary during one issuance: {} KiB",
        run.max_rss_kib
    );
    run.assert_code(0);

    // Everything certboot wrote is inside the root, in the output directory, owned by 65532.
    let certs = root.path().join("certs");
    let (cert, _key) = read_pair(&certs);
    assert!(
        cert.contains("BEGIN CERTIFICATE"),
        "cert.pem holds a certificate"
    );
    let key_meta = std::fs::metadata(certs.join("key.pem")).expect("key.pem");
    assert_eq!(key_meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        (key_meta.uid(), key_meta.gid()),
        (NONROOT, NONROOT),
        "written as 65532"
    );
    assert_eq!(
        root.entries(),
        ["ca.crt", "certboot", "certs", "kubeconfig"],
        "nothing written outside the output directory"
    );
    // Issued by the signer it asked, for this pod.
    let issued = parse_leaf(&cert);
    assert_eq!(issued.0, signer_subject(signer.ca_pem()));
    assert_eq!(issued.1, format!("web-static.{NS}"));
    assert!(
        run.max_rss_kib < manifest_memory_limit_kib(),
        "peak RSS {} KiB exceeds the manifests' memory limit",
        run.max_rss_kib
    );

    // The most memory-hungry key (RSA-4096) fits the manifests' limit too.
    let rsa_root = EmptyRoot::new(&cp, &binary, cp.url()).await;
    let rsa = rsa_root
        .run("web-rsa", &[("CERTBOOT_KEY_ALGORITHM", "rsa-4096")])
        .await;
    eprintln!(
        "peak RSS of the static binary during one rsa-4096 issuance: {} KiB",
        rsa.max_rss_kib
    );
    rsa.assert_code(0);
    read_pair(&rsa_root.path().join("certs"));
    assert!(
        rsa.max_rss_kib < manifest_memory_limit_kib(),
        "peak RSS {} KiB exceeds the manifests' memory limit",
        rsa.max_rss_kib
    );

    // As a sidecar serving /metrics, from start to SIGTERM.
    let sidecar_root = EmptyRoot::new(&cp, &binary, cp.url()).await;
    let metrics_addr = format!("127.0.0.1:{}", harness::process::free_port());
    let (pid, stderr) = sidecar_root.spawn(
        "web-sidecar",
        &[
            ("CERTBOOT_MODE", "sidecar"),
            ("CERTBOOT_METRICS_ADDR", &metrics_addr),
        ],
    );
    let cert = sidecar_root.path().join("certs/cert.pem");
    let metrics = wait_for_metrics(&metrics_addr, &cert, &stderr).await;
    assert!(metrics.contains("certboot_"), "{metrics}");
    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let sidecar = reap(pid, &stderr).await;
    eprintln!(
        "peak RSS of the static binary as a sidecar (issuance + metrics): {} KiB",
        sidecar.max_rss_kib
    );
    sidecar.assert_code(0);
    assert!(
        sidecar.max_rss_kib < manifest_memory_limit_kib(),
        "peak RSS {} KiB exceeds the manifests' memory limit",
        sidecar.max_rss_kib
    );
}

/// The certboot container's memory limit in manifests/examples/init-container.yaml, in KiB.
fn manifest_memory_limit_kib() -> i64 {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/manifests/examples/init-container.yaml"
    );
    let text = std::fs::read_to_string(path).expect("read the example");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("limits: {memory:"))
        .expect("a memory limit");
    let value = line
        .split("memory:")
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches('}');
    let mebibytes: i64 = value
        .strip_suffix("Mi")
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("limit in Mi: {line}"));
    mebibytes * 1024
}

/// Waits until the sidecar has written its pair, then returns its /metrics page.
async fn wait_for_metrics(addr: &str, cert: &Path, stderr: &Path) -> String {
    let deadline = Instant::now() + support::RUN_DEADLINE;
    loop {
        if cert.exists() {
            if let Ok(response) = http_get(addr, "/metrics") {
                if response.starts_with("HTTP/1.") {
                    return response;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no pair and /metrics within {:?}\nstderr:\n{}",
            support::RUN_DEADLINE,
            std::fs::read_to_string(stderr).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_host_name_resolves_through_etc_hosts_in_an_empty_root() {
    let Some((binary, cp)) = binary_and_control_plane().await else {
        return;
    };
    let _signer = cp.custom_signer(SIGNER, Duration::from_secs(3600));
    // The apiserver's serving certificate is valid for "localhost".
    let by_name = cp.url().replace("127.0.0.1", "localhost");
    let root = EmptyRoot::new(&cp, &binary, &by_name).await;
    root.add_file("etc/hosts", "127.0.0.1 localhost\n");
    root.run("web-hosts", &[]).await.assert_code(0);
    read_pair(&root.path().join("certs"));
}

/// certboot checks the API server's host name before its first call (`certboot_core::api::client`);
/// without that check the lookup would fail inside the HTTP client and be retried as a transient
/// connection failure until CERTBOOT_TIMEOUT.
#[tokio::test]
async fn a_host_name_without_etc_hosts_fails_at_once_saying_what_to_do() {
    let Some((binary, cp)) = binary_and_control_plane().await else {
        return;
    };
    let by_name = cp.url().replace("127.0.0.1", "localhost");
    let root = EmptyRoot::new(&cp, &binary, &by_name).await;
    let run = root
        .run("web-no-hosts", &[("CERTBOOT_TIMEOUT", "60s")])
        .await;
    run.assert_code(1);
    for needle in [
        "cannot resolve the API server host \"localhost\"",
        "/etc/hosts (absent)",
        "use an IP address",
    ] {
        assert!(run.stderr.contains(needle), "{needle:?}:\n{}", run.stderr);
    }
    assert!(!root.path().join("certs/cert.pem").exists());
}

/// The check main.rs runs before building the client judges the server host of a kubeconfig,
/// loaded the way the client loads it.
#[tokio::test]
async fn the_api_server_host_check_reads_the_kubeconfig() {
    async fn check(server: &str) -> Result<(), String> {
        let kubeconfig = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": server}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "c",
        });
        let kubeconfig: kube::config::Kubeconfig =
            serde_json::from_value(kubeconfig).expect("a kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("a client configuration");
        certboot_core::api::client::check_config(&config)
            .await
            .map_err(|e| e.to_string())
    }
    check("https://10.96.0.1:443")
        .await
        .expect("an IP address needs no resolving");
    check("https://[fd00::1]:6443")
        .await
        .expect("an IPv6 address needs no resolving");
    let message = check("https://api.certboot.invalid:6443")
        .await
        .expect_err(".invalid never resolves");
    assert!(
        message.contains("cannot resolve the API server host \"api.certboot.invalid\""),
        "{message}"
    );
    assert!(message.contains("use an IP address"), "{message}");
}

// ---- the empty root ----------------------------------------------------------------------------

/// A directory holding only the binary, a kubeconfig (token inline), the apiserver CA and an
/// output directory owned by 65532.
struct EmptyRoot {
    dir: tempfile::TempDir,
    logs: tempfile::TempDir,
}

/// A finished chrooted run with its peak memory.
struct Run {
    code: i32,
    stderr: String,
    max_rss_kib: i64,
}

impl Run {
    fn assert_code(&self, expected: i32) {
        assert_eq!(self.code, expected, "exit code; stderr:\n{}", self.stderr);
    }
}

impl EmptyRoot {
    async fn new(cp: &ControlPlane, binary: &Path, server: &str) -> EmptyRoot {
        cp.apply_manifest_file(
            concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/rbac.yaml"),
            NS,
        )
        .await;
        let token = cp.service_account_token(NS, "certboot").await;
        let dir = tempfile::Builder::new()
            .prefix("certboot-root-")
            .tempdir()
            .expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let root = EmptyRoot {
            dir,
            logs: tempfile::tempdir().expect("tempdir"),
        };
        std::fs::copy(binary, root.path().join("certboot")).expect("copy the binary");
        root.add_file("ca.crt", cp.apiserver_ca_pem());
        let kubeconfig = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": server, "certificate-authority": "/ca.crt"}}],
            "users": [{"name": "u", "user": {"token": token}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": NS}}],
            "current-context": "c",
        });
        root.add_file("kubeconfig", &kubeconfig.to_string());
        let certs = root.path().join("certs");
        std::fs::create_dir(&certs).expect("mkdir certs");
        std::os::unix::fs::chown(&certs, Some(NONROOT), Some(NONROOT)).expect("chown certs");
        root
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn add_file(&self, relative: &str, contents: &str) {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, contents).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }

    fn entries(&self) -> Vec<String> {
        let mut names = support::entries(self.path());
        names.sort();
        names
    }

    /// Runs `/certboot` chrooted into the directory as 65532:65532, with only the variables a
    /// pod spec would set, to completion.
    async fn run(&self, pod: &str, extra_env: &[(&str, &str)]) -> Run {
        let (pid, stderr) = self.spawn(pod, extra_env);
        reap(pid, &stderr).await
    }

    /// Starts `/certboot` chrooted (see [`EmptyRoot::run`]); returns its pid and stderr file.
    fn spawn(&self, pod: &str, extra_env: &[(&str, &str)]) -> (libc::pid_t, PathBuf) {
        let root =
            std::ffi::CString::new(self.path().as_os_str().as_encoded_bytes()).expect("root path");
        let stderr_path = self.logs.path().join(format!("{pod}.stderr"));
        let mut command = Command::new("/certboot");
        command
            .env_clear()
            .env("KUBECONFIG", "/kubeconfig")
            .env("POD_NAME", pod)
            .env("POD_NAMESPACE", NS)
            .env("POD_UID", fake_uid(pod))
            .env("POD_IPS", "10.0.0.7")
            .env("CERTBOOT_SIGNER_NAME", SIGNER)
            .env("CERTBOOT_DNS_NAMES", "web.default.svc")
            .env("CERTBOOT_CERT_DIR", "/certs")
            .env("CERTBOOT_TERMINATION_LOG", "off")
            .env("CERTBOOT_EVENTS", "false")
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).expect("stderr file"));
        // SAFETY: only async-signal-safe libc calls between fork and exec; `root` was allocated
        // before the fork.
        unsafe {
            command.pre_exec(move || {
                let check = |rc: libc::c_int| {
                    if rc == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                };
                check(libc::chroot(root.as_ptr()))?;
                check(libc::chdir(c"/".as_ptr()))?;
                check(libc::setgroups(0, std::ptr::null()))?;
                check(libc::setgid(NONROOT))?;
                check(libc::setuid(NONROOT))
            });
        }
        // Reaped below with wait4(2), which also reports its resource usage.
        #[allow(clippy::zombie_processes)]
        let child = command.spawn().expect("spawn chrooted certboot");
        (child.id() as libc::pid_t, stderr_path)
    }
}

/// Waits for a chrooted certboot with wait4(2), which also reports its peak RSS.
async fn reap(pid: libc::pid_t, stderr_path: &Path) -> Run {
    let deadline = Instant::now() + support::RUN_DEADLINE;
    let (status, usage) = loop {
        let mut status = 0;
        // SAFETY: an all-zero rusage is valid; wait4 writes into both out-parameters.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 on our own child, non-blocking.
        let rc = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if rc == pid {
            break (status, usage);
        }
        assert!(rc == 0, "wait4: {}", std::io::Error::last_os_error());
        if Instant::now() > deadline {
            // SAFETY: kill(2) on our own, not yet reaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!(
                "certboot did not exit within {:?}\nstderr:\n{}",
                support::RUN_DEADLINE,
                std::fs::read_to_string(stderr_path).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let stderr = std::fs::read_to_string(stderr_path).unwrap_or_default();
    assert!(
        libc::WIFEXITED(status),
        "certboot was killed by signal {}\nstderr:\n{stderr}",
        libc::WTERMSIG(status)
    );
    Run {
        code: libc::WEXITSTATUS(status),
        stderr,
        max_rss_kib: usage.ru_maxrss,
    }
}

// ---- certificate helpers ---------------------------------------------------------------

/// (issuer, subject CN) of the first certificate in a PEM chain.
fn parse_leaf(chain_pem: &str) -> (String, String) {
    let der = first_der(chain_pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("parse the leaf");
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_owned();
    (cert.issuer().to_string(), cn)
}

fn signer_subject(ca_pem: &str) -> String {
    let der = first_der(ca_pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("parse the CA");
    cert.subject().to_string()
}

fn first_der(pem_text: &str) -> Vec<u8> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text.as_bytes()).expect("PEM");
    pem.contents
}
