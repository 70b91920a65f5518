//! Which Kubernetes the e2e tests run against, and what that version can show.
//!
//! One `cargo test` runs against one control plane: the binaries in `KUBEBUILDER_ASSETS`
//! (`scripts/testenv.sh oldest|newest`). The version is read from `kube-apiserver --version`
//! once per test process. `CERTBOOT_E2E_K8S=oldest|newest` names the version the caller meant
//! (CI sets it): the harness checks it against the pins in `testenv/` (`testenv/oldest/VERSION`,
//! `k8s.io/kubernetes` in `testenv/newest/go.mod`), so a run labelled "newest" cannot quietly
//! test an old binary, and under `CI=true` a newest run never skips a newest-only test.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// A Kubernetes release, e.g. `v1.37.2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KubeVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl KubeVersion {
    /// Parses `v1.20.2` or `1.20.2` (a pre-release or build suffix is ignored).
    pub fn parse(text: &str) -> Option<KubeVersion> {
        let core = text.trim().trim_start_matches('v');
        let core = core.split(['-', '+']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
        let version = KubeVersion {
            major: parts.next()??,
            minor: parts.next()??,
            patch: parts.next()??,
        };
        parts.next().is_none().then_some(version)
    }

    /// True from release `1.minor` on.
    pub fn has(self, minor: u32) -> bool {
        self.major > 1 || (self.major == 1 && self.minor >= minor)
    }
}

/// The version of the binaries in `assets` (`kube-apiserver --version`), checked against
/// `CERTBOOT_E2E_K8S` when `assets` is `KUBEBUILDER_ASSETS`; read once per directory.
pub fn of_assets(assets: &Path) -> KubeVersion {
    static SEEN: Mutex<Vec<(PathBuf, KubeVersion)>> = Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, version)) = seen.iter().find(|(dir, _)| dir == assets) {
        return *version;
    }
    let version = apiserver_version(assets);
    if std::env::var_os("KUBEBUILDER_ASSETS").is_some_and(|dir| Path::new(&dir) == assets) {
        check_label(version);
    }
    seen.push((assets.to_path_buf(), version));
    version
}

/// The version under test, or `None` when `KUBEBUILDER_ASSETS` is unset.
pub fn under_test() -> Option<KubeVersion> {
    let assets = std::env::var_os("KUBEBUILDER_ASSETS").filter(|v| !v.is_empty())?;
    Some(of_assets(Path::new(&assets)))
}

/// Whether a test needing `feature` (Kubernetes `1.minor`+) should skip: prints the SKIPPED line
/// and returns true on an older version. Under `CI=true` in a run labelled
/// `CERTBOOT_E2E_K8S=newest` that is a failure, not a skip.
pub fn skip_unless(minor: u32, feature: &str) -> bool {
    let Some(version) = under_test() else {
        return false; // ControlPlane::start prints the usual SKIPPED line (or fails under CI)
    };
    if version.has(minor) {
        return false;
    }
    let message = format!(
        "SKIPPED e2e on Kubernetes {version}: {feature} needs 1.{minor}+ \
         (run it on the newest: KUBEBUILDER_ASSETS=\"$(scripts/testenv.sh newest)\")"
    );
    if std::env::var("CI").as_deref() == Ok("true") && label().as_deref() == Some("newest") {
        panic!("CI=true and CERTBOOT_E2E_K8S=newest, yet {message}");
    }
    eprintln!("{message}");
    true
}

fn apiserver_version(assets: &Path) -> KubeVersion {
    let program = assets.join("kube-apiserver");
    let output = Command::new(&program)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("run {} --version: {e}", program.display()));
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .last()
        .and_then(KubeVersion::parse)
        .filter(|v| v.major > 0)
        .unwrap_or_else(|| {
            panic!(
                "{} --version says {text:?}, not `Kubernetes vX.Y.Z`: build it with scripts/testenv.sh",
                program.display()
            )
        })
}

/// `CERTBOOT_E2E_K8S` (`oldest`, `newest`; `all` or unset: no particular version).
fn label() -> Option<String> {
    std::env::var("CERTBOOT_E2E_K8S")
        .ok()
        .filter(|v| !v.is_empty() && v != "all")
}

/// Panics when `CERTBOOT_E2E_K8S` names a version other than the one in `KUBEBUILDER_ASSETS`.
fn check_label(version: KubeVersion) {
    let Some(label) = label() else { return };
    let pinned = pinned(&label)
        .unwrap_or_else(|| panic!("CERTBOOT_E2E_K8S={label}: expected oldest, newest or all"));
    assert_eq!(
        version, pinned,
        "CERTBOOT_E2E_K8S={label} is Kubernetes {pinned} (testenv/), but KUBEBUILDER_ASSETS \
         holds {version}: run KUBEBUILDER_ASSETS=\"$(scripts/testenv.sh {label})\""
    );
}

/// The version `scripts/testenv.sh` builds for `label`.
pub fn pinned(label: &str) -> Option<KubeVersion> {
    let testenv = Path::new(env!("CARGO_MANIFEST_DIR")).join("testenv");
    let read = |path: &Path| {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    };
    match label {
        "oldest" => KubeVersion::parse(&read(&testenv.join("oldest/VERSION"))),
        "newest" => read(&testenv.join("newest/go.mod"))
            .lines()
            .filter_map(|line| line.trim().strip_prefix("k8s.io/kubernetes "))
            .find_map(KubeVersion::parse),
        _ => None,
    }
}
