//! Where the `certboot-controller` binary is. It is another package's binary, so cargo does not
//! hand its path to these tests (`CARGO_BIN_EXE_*` names only this package's); `cargo test` at
//! the workspace root builds it, beside this test's own executable's directory
//! (`target/<profile>/`). `CERTBOOT_CONTROLLER_BIN` overrides the path.
//!
//! A run of one suite alone (`cargo test --test e2e_approver`) builds only this package: the
//! controller binary may then be missing or older than its sources, and testing an old controller
//! proves nothing. Both fail here, saying what to run.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The controller binary to run: present and not older than the core's and the controller's sources.
pub fn controller_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CERTBOOT_CONTROLLER_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test's own executable");
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable sits in target/<profile>/deps");
    let binary = profile_dir.join("certboot-controller");
    let built = std::fs::metadata(&binary)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: build it with `cargo build -p certboot-controller` (plain \
                 `cargo test` at the workspace root does), or set CERTBOOT_CONTROLLER_BIN",
                binary.display()
            )
        });
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for crate_dir in ["crates/certboot-core", "crates/certboot-controller"] {
        if let Some((source, changed)) = newest_source(&root.join(crate_dir)) {
            assert!(
                changed <= built,
                "{} is older than {}: rebuild it with `cargo build -p certboot-controller` (plain \
                 `cargo test` at the workspace root does)",
                binary.display(),
                source.display()
            );
        }
    }
    binary
}

/// The most recently modified file under `dir`'s `src/` and its `Cargo.toml`.
fn newest_source(dir: &Path) -> Option<(PathBuf, SystemTime)> {
    let mut newest: Option<(PathBuf, SystemTime)> = None;
    let mut pending = vec![dir.join("src"), dir.join("Cargo.toml")];
    while let Some(path) = pending.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                pending.extend(entries.flatten().map(|e| e.path()));
            }
        } else if let Ok(changed) = meta.modified() {
            if newest.as_ref().is_none_or(|(_, t)| changed > *t) {
                newest = Some((path, changed));
            }
        }
    }
    newest
}
