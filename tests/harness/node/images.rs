//! The node's images: built once per test process by `scripts/node-images.sh` (buildah, no
//! registry) as OCI archives, imported into each node's containerd with `ctr images import`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The archives scripts/node-images.sh writes (their tags are in the script).
const ARCHIVES: [&str; 4] = ["pause.tar", "certboot.tar", "app.tar", "placeholder.tar"];
/// README.md's app image (Debian's busybox-static; its entrypoint is `/bin/sh`).
pub const APP_IMAGE: &str = "docker.io/library/busybox:1.36";
/// The certboot image (the Dockerfile's final stage: `/certboot` and `/certboot-controller`).
pub const CERTBOOT_IMAGE: &str = "ghcr.io/certboot/certboot:0.1.0";
/// The examples' placeholder app image is replaced by this one (busybox running `sleep`).
pub const PLACEHOLDER_APP_IMAGE: &str = "localhost/certboot-test/app:1";

/// The directory of archives, built on first use.
pub fn archives(static_bin: &Path) -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(|| build(static_bin)).clone()
}

fn build(static_bin: &Path) -> Result<PathBuf, String> {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("node-images");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/node-images.sh");
    let output = Command::new(script)
        .arg(&out)
        .env("CERTBOOT_STATIC_BIN", static_bin)
        .output()
        .map_err(|e| format!("run {script}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{script} {} failed ({}): {}",
            out.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(out)
}

/// Imports every archive into the containerd listening on `socket` (CRI namespace `k8s.io`).
pub fn import(socket: &Path, archives: &Path) -> Result<(), String> {
    for name in ARCHIVES {
        let file = archives.join(name);
        let output = Command::new("ctr")
            .arg("--address")
            .arg(socket)
            .args(["--namespace", "k8s.io", "images", "import"])
            .arg(&file)
            .output()
            .map_err(|e| format!("run ctr: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "ctr images import {} failed ({}): {}",
                file.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
    }
    Ok(())
}
