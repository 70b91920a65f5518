//! What a node needs, checked before anything starts: root, the Debian packages' commands, the
//! kubelet beside the control plane's binaries, and the static certboot for the image. Missing
//! pieces skip node tests with one line saying what to install; under `CI=true` they fail.

use std::path::{Path, PathBuf};

const COMMANDS: [(&str, &str); 9] = [
    ("ip", "iproute2"),
    ("nsenter", "util-linux"),
    ("containerd", "containerd"),
    ("containerd-shim-runc-v2", "containerd"),
    ("ctr", "containerd"),
    ("runc", "runc"),
    ("buildah", "buildah"),
    ("busybox", "busybox-static"),
    ("gcc", "gcc libc6-dev"),
];
const CNI_PLUGINS: [&str; 3] = ["bridge", "host-local", "loopback"];
/// Where Debian's containernetworking-plugins installs the CNI plugins.
pub const CNI_BIN_DIR: &str = "/usr/lib/cni";

/// What the node runs from: the kubelet, and the static certboot for the image.
pub struct Tools {
    pub kubelet: PathBuf,
    pub static_bin: PathBuf,
}

/// `Ok` when a node can run here, else why not (one line).
pub fn check(assets: &Path) -> Result<Tools, String> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root (containerd, runc, network namespaces and mounts need root)".into());
    }
    let mut missing: Vec<String> = COMMANDS
        .iter()
        .filter(|(command, _)| which(command).is_none())
        .map(|(command, package)| format!("{command} (apt-get install {package})"))
        .collect();
    missing.extend(
        CNI_PLUGINS
            .iter()
            .filter(|p| !Path::new(CNI_BIN_DIR).join(p).is_file())
            .map(|p| format!("{CNI_BIN_DIR}/{p} (apt-get install containernetworking-plugins)")),
    );
    let kubelet = assets.join("kubelet");
    if !kubelet.is_file() {
        missing.push(format!(
            "{} (scripts/testenv.sh builds it)",
            kubelet.display()
        ));
    }
    let static_bin = std::env::var_os("CERTBOOT_STATIC_BIN").map(PathBuf::from);
    match &static_bin {
        Some(path) if path.is_file() => {}
        _ => missing.push(
            "CERTBOOT_STATIC_BIN (export CERTBOOT_STATIC_BIN=$(scripts/build-static.sh | head -1))"
                .into(),
        ),
    }
    if !missing.is_empty() {
        return Err(format!("missing {}", missing.join(", ")));
    }
    Ok(Tools {
        kubelet,
        static_bin: static_bin.unwrap_or_default(),
    })
}

fn which(command: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(command))
        .find(|candidate| candidate.is_file())
}
