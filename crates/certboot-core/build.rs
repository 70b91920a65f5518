//! Records the git revision for both programs' `--version` (src/version.rs) (overridable with CERTBOOT_GIT_REVISION,
//! for builds without a .git directory, such as a Docker build context).
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=CERTBOOT_GIT_REVISION");
    println!("cargo:rerun-if-changed=../../.git/HEAD");
    println!("cargo:rerun-if-changed=../../.git/refs");
    let revision = std::env::var("CERTBOOT_GIT_REVISION").ok().or_else(|| {
        Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
    });
    println!(
        "cargo:rustc-env=CERTBOOT_GIT_REVISION={}",
        revision.unwrap_or_else(|| "unknown".into())
    );
}
