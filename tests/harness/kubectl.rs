//! Where kubectl is: the test bed's (`KUBEBUILDER_ASSETS/kubectl`, which scripts/testenv.sh
//! builds for the newest version, as envtest's assets hold it), else the first on PATH.

use std::path::{Path, PathBuf};

/// kubectl, if there is one (see the module docs).
pub fn path() -> Option<PathBuf> {
    let assets = std::env::var_os("KUBEBUILDER_ASSETS").unwrap_or_default();
    let bed = Path::new(&assets).join("kubectl");
    if !assets.is_empty() && bed.is_file() {
        return Some(bed);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|p| p.join("kubectl"))
        .find(|p| p.is_file())
}
