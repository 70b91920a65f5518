//! `--version` for both programs: the name, the workspace version and the git revision it was
//! built from (`CERTBOOT_GIT_REVISION` at build time, set by scripts/build-static.sh).

/// `<program> <version> (git <revision>)`, one line.
pub fn version(program: &str) -> String {
    format!(
        "{program} {} (git {})\n",
        env!("CARGO_PKG_VERSION"),
        option_env!("CERTBOOT_GIT_REVISION").unwrap_or("unknown")
    )
}
