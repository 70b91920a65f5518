//! The knobs: `CERTBOOT_BENCH_*` environment variables and their defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) struct Settings {
    pub(crate) binary: PathBuf,
    pub(crate) runs: usize,
    pub(crate) slow_runs: usize,
    pub(crate) scale: usize,
    pub(crate) delayed: usize,
    pub(crate) delay: Duration,
    pub(crate) skip: Vec<String>,
    /// More control planes (KUBEBUILDER_ASSETS-style directories) for the scale scenario.
    pub(crate) compare_assets: Vec<PathBuf>,
}

impl Settings {
    pub(crate) fn from_env() -> Settings {
        let number = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let default_binary = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/x86_64-unknown-linux-gnu/release/certboot");
        Settings {
            binary: std::env::var_os("CERTBOOT_BENCH_BINARY")
                .map(PathBuf::from)
                .unwrap_or(default_binary),
            runs: number("CERTBOOT_BENCH_RUNS", 30).max(1),
            slow_runs: number("CERTBOOT_BENCH_SLOW_RUNS", 10).max(1),
            scale: number("CERTBOOT_BENCH_SCALE", 200).max(1),
            delayed: number("CERTBOOT_BENCH_DELAYED", 20).max(1),
            delay: Duration::from_secs(number("CERTBOOT_BENCH_DELAY_SECS", 30) as u64),
            skip: std::env::var("CERTBOOT_BENCH_SKIP")
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            compare_assets: std::env::var_os("CERTBOOT_BENCH_COMPARE_ASSETS")
                .map(|dirs| {
                    std::env::split_paths(&dirs)
                        .filter(|dir| !dir.as_os_str().is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    pub(crate) fn skip(&self, part: &str) -> bool {
        self.skip.iter().any(|s| s == part)
    }
}
