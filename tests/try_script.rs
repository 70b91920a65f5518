//! `scripts/try.sh`, the README's one-command try-out ("Try it"), run as a user runs it: on the
//! newest test bed (`KUBEBUILDER_ASSETS`, so nothing is rebuilt) it prints the pod's certificate
//! and exits 0; interrupted (Ctrl-C), it exits 130. Either way no process it started is left and
//! its directory is gone.
//!
//! Run: `CERTBOOT_E2E_K8S=newest KUBEBUILDER_ASSETS=$(scripts/testenv.sh newest) cargo test --test
//! try_script`. Without `KUBEBUILDER_ASSETS` (and `CI` unset), or on another version, each test
//! prints a SKIPPED line and passes.

#[path = "harness/controller_bin.rs"]
mod controller_bin;
#[path = "harness/version.rs"]
#[allow(dead_code)]
mod version;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A whole run takes about 10 s on the newest bed (2 cores); this is the hang bound.
const RUN_DEADLINE: Duration = Duration::from_secs(180);

/// The newest bed's directory, or `None` after printing why the test is skipped.
fn newest_assets() -> Option<PathBuf> {
    let Some(assets) = std::env::var_os("KUBEBUILDER_ASSETS").filter(|v| !v.is_empty()) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but KUBEBUILDER_ASSETS is not set: CI must run the e2e tests \
             (export KUBEBUILDER_ASSETS=\"$(scripts/testenv.sh newest)\")"
        );
        eprintln!(
            "SKIPPED e2e: KUBEBUILDER_ASSETS not set \
             (run: export KUBEBUILDER_ASSETS=\"$(scripts/testenv.sh newest)\")"
        );
        return None;
    };
    let assets = PathBuf::from(assets);
    // Checks CERTBOOT_E2E_K8S against the binaries: a run labelled newest cannot skip below.
    let running = version::of_assets(&assets);
    let newest = version::pinned("newest").expect("testenv/newest/go.mod pins k8s.io/kubernetes");
    if running != newest {
        eprintln!(
            "SKIPPED e2e on Kubernetes {running}: scripts/try.sh runs the newest control plane \
             ({newest}; KUBEBUILDER_ASSETS=\"$(scripts/testenv.sh newest)\")"
        );
        return None;
    }
    Some(assets)
}

/// `bash scripts/try.sh` with its temporary directory under `tmpdir`, the binaries of this build,
/// stdout and stderr into `output`.
fn spawn_try(assets: &Path, tmpdir: &Path, output: &Path) -> Child {
    let log = std::fs::File::create(output).expect("output file");
    Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/try.sh"))
        .env("KUBEBUILDER_ASSETS", assets)
        .env("TMPDIR", tmpdir)
        .env("CERTBOOT_BIN", env!("CARGO_BIN_EXE_certboot"))
        .env(
            "CERTBOOT_CONTROLLER_BIN",
            controller_bin::controller_binary(),
        )
        .env_remove("CERTBOOT_TRY_KEEP")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("duplicate the output file"))
        .stderr(log)
        .spawn()
        .expect("run bash scripts/try.sh")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits for the script's exit; kills it and fails with its output after [`RUN_DEADLINE`].
fn finish(mut child: Child, output: &Path) -> ExitStatus {
    let until = Instant::now() + RUN_DEADLINE;
    loop {
        if let Some(status) = child.try_wait().expect("wait for try.sh") {
            return status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "try.sh did not finish within {RUN_DEADLINE:?}:\n{}",
                read(output)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Everything the script made lived under `tmpdir`: it must be empty, and no process may still
/// name it (etcd's data dir and the API server's flags do; certboot-controller's and certboot's
/// KUBECONFIG do).
fn assert_cleaned_up(tmpdir: &Path, output: &str) {
    let left: Vec<_> = std::fs::read_dir(tmpdir)
        .expect("read TMPDIR")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "try.sh left {left:?} behind:\n{output}");
    let needle = tmpdir.to_string_lossy().into_owned();
    let mut survivors = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        for file in ["cmdline", "environ"] {
            let bytes = std::fs::read(entry.path().join(file)).unwrap_or_default();
            if String::from_utf8_lossy(&bytes).contains(&needle) {
                let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                survivors.push(format!(
                    "{name}: {}",
                    String::from_utf8_lossy(&cmdline).replace('\0', " ")
                ));
                break;
            }
        }
    }
    assert!(
        survivors.is_empty(),
        "processes try.sh started are still running: {survivors:?}\n{output}"
    );
}

#[test]
fn try_sh_prints_the_pods_certificate_and_leaves_nothing_behind() {
    let Some(assets) = newest_assets() else {
        return;
    };
    let tmpdir = tempfile::tempdir().expect("tempdir");
    let scratch = tempfile::tempdir().expect("tempdir");
    let output_path = scratch.path().join("output");
    let status = finish(
        spawn_try(&assets, tmpdir.path(), &output_path),
        &output_path,
    );
    let output = read(&output_path);
    assert_eq!(status.code(), Some(0), "try.sh failed:\n{output}");
    for expected in [
        // The pod's identity, exactly what the approver allows and the signer signs.
        "subject=CN = web-0.default",
        "issuer=CN = certboot try-out CA",
        "DNS:web.default.svc, IP Address:10.244.0.7",
        "TLS Web Server Authentication",
        "/certs/cert.pem: OK",
        "certboot-controller approved and signed CSR default:web-0:",
        // Where the files are, the key private.
        "-rw-------  ",
        "stopped everything it started and removed ",
    ] {
        assert!(output.contains(expected), "no {expected:?} in:\n{output}");
    }
    assert!(
        output.contains(&format!("{}/certboot-try.", tmpdir.path().display())),
        "the paths printed are in the script's directory:\n{output}"
    );
    assert!(
        !output.contains("BEGIN") && !output.contains("PRIVATE KEY"),
        "no PEM (let alone the key) is printed:\n{output}"
    );
    assert_cleaned_up(tmpdir.path(), &output);
}

#[test]
fn try_sh_interrupted_stops_everything_it_started() {
    let Some(assets) = newest_assets() else {
        return;
    };
    let tmpdir = tempfile::tempdir().expect("tempdir");
    let scratch = tempfile::tempdir().expect("tempdir");
    let output_path = scratch.path().join("output");
    let child = spawn_try(&assets, tmpdir.path(), &output_path);
    // Ctrl-C once the whole control plane and the controller run: the most there is to stop.
    let until = Instant::now() + RUN_DEADLINE;
    while !read(&output_path).contains("starting certboot-controller") {
        assert!(
            Instant::now() < until,
            "try.sh did not start certboot-controller within {RUN_DEADLINE:?}:\n{}",
            read(&output_path)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let status = finish(child, &output_path);
    let output = read(&output_path);
    assert_eq!(
        status.code(),
        Some(130),
        "exit code after Ctrl-C:\n{output}"
    );
    assert!(output.contains("try: interrupted"), "{output}");
    assert!(
        output.contains("stopped everything it started and removed "),
        "{output}"
    );
    assert_cleaned_up(tmpdir.path(), &output);
}
