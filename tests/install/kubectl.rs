//! kubectl ([`crate::harness::kubectl::path`]) run against a kubeconfig file, from the repository
//! root.

use std::path::{Path, PathBuf};
use std::process::Command;

/// kubectl for the running test bed: `None` after a SKIPPED line when there is none (outside
/// CI; under `CI=true` a panic).
pub fn find() -> Option<Kubectl> {
    if let Some(path) = crate::harness::kubectl::path() {
        return Some(Kubectl { path });
    }
    let why = "no kubectl in KUBEBUILDER_ASSETS or on PATH (scripts/testenv.sh newest builds it)";
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {why}"
    );
    eprintln!("SKIPPED kubectl install test: {why}");
    None
}

/// The kubectl binary.
pub struct Kubectl {
    path: PathBuf,
}

impl Kubectl {
    /// Runs `kubectl --kubeconfig <kubeconfig> <args>` from the repository root (so the README's
    /// relative paths work); panics with its output when it fails.
    pub fn run(&self, kubeconfig: &Path, args: &[&str]) -> String {
        let out = Command::new(&self.path)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.path.display()));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "kubectl {} failed ({}):\n{stdout}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}
