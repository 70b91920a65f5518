//! `cargo bench --bench keygen`: RSA key generation, certboot's (`PrivateKey::generate`, AWS-LC)
//! beside Go's (`crypto/rsa.GenerateKey`, bench/keygen-go), on the same machine in the same run.
//!
//! For each size, certboot's keys then Go's, each side after one warm-up key, up to a count or a
//! time budget (at least 5 keys). Prints a markdown table (p50, p95, max, and the goal: certboot's
//! p50 <= Go's p50, p95 <= 2x Go's p95) and writes it to target/bench/keygen.md.
//!
//! Needs the Go toolchain (`go` on PATH, or /usr/local/go/bin/go; GOFLAGS=-mod=mod, no modules
//! are downloaded). Knob: `CERTBOOT_BENCH_KEYGEN_SCALE` multiplies the counts (default 1).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use certboot_core::pki::key::{KeyAlgorithm, PrivateKey};

/// (algorithm, bits, keys, time budget per side)
const SIZES: [(KeyAlgorithm, u32, usize, u64); 3] = [
    (KeyAlgorithm::Rsa2048, 2048, 100, 45),
    (KeyAlgorithm::Rsa4096, 4096, 40, 90),
    (KeyAlgorithm::Rsa8192, 8192, 12, 150),
];

fn main() {
    let scale: usize = std::env::var("CERTBOOT_BENCH_KEYGEN_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let go = build_go();
    let mut report = String::from(
        "| key | keys (certboot / Go) | certboot p50 / p95 / max | Go p50 / p95 / max | p50 <= Go p50 | p95 <= 2x Go p95 |\n|---|---|---|---|---|---|\n",
    );
    for (algorithm, bits, count, budget) in SIZES {
        let count = count * scale;
        eprintln!("bench: {algorithm}: certboot, up to {count} keys or {budget} s");
        let ours = certboot_samples(algorithm, count, Duration::from_secs(budget));
        eprintln!("bench: {algorithm}: Go, up to {count} keys or {budget} s");
        let theirs = go_samples(&go, bits, count, budget);
        let (a, b) = (Stats::of(ours), Stats::of(theirs));
        report.push_str(&format!(
            "| {algorithm} | {} / {} | {} | {} | {} | {} |\n",
            a.n,
            b.n,
            a.row(),
            b.row(),
            yes(a.p50 <= b.p50),
            yes(a.p95 <= 2.0 * b.p95),
        ));
    }
    let go_version = Command::new(which_go())
        .arg("version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    report.push_str(&format!(
        "\ncertboot: aws-lc-rs (the [profile.bench] build); Go: {go_version}; {} CPUs.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));
    println!("{report}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out).expect("target/bench");
    std::fs::write(out.join("keygen.md"), report).expect("target/bench/keygen.md");
}

fn certboot_samples(algorithm: KeyAlgorithm, count: usize, budget: Duration) -> Vec<f64> {
    drop(PrivateKey::generate(algorithm).expect("warm-up key"));
    let start = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < count && (samples.len() < 5 || start.elapsed() < budget) {
        let t = Instant::now();
        let key = PrivateKey::generate(algorithm).expect("generate a key");
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
        drop(key);
    }
    samples
}

/// Builds bench/keygen-go (standard library only) into target/bench.
fn build_go() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let go = which_go();
    let binary = root.join("target/bench/keygen-go");
    let status = Command::new(&go)
        .args(["build", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(root.join("bench/keygen-go"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .status()
        .expect("run go build (is the Go toolchain installed?)");
    assert!(status.success(), "go build bench/keygen-go failed");
    binary
}

fn which_go() -> PathBuf {
    let local = PathBuf::from("/usr/local/go/bin/go");
    if Command::new("go").arg("version").output().is_ok() {
        PathBuf::from("go")
    } else {
        local
    }
}

fn go_samples(binary: &Path, bits: u32, count: usize, budget: u64) -> Vec<f64> {
    let out = Command::new(binary)
        .arg(format!("{bits}:{count}:{budget}"))
        .output()
        .expect("run keygen-go");
    assert!(
        out.status.success(),
        "keygen-go: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' ')?.1.parse().ok())
        .collect()
}

struct Stats {
    n: usize,
    p50: f64,
    p95: f64,
    max: f64,
}

impl Stats {
    /// Nearest-rank percentiles.
    fn of(mut samples: Vec<f64>) -> Stats {
        samples.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let i = ((p * samples.len() as f64).ceil() as usize).max(1) - 1;
            samples[i.min(samples.len() - 1)]
        };
        Stats {
            n: samples.len(),
            p50: rank(0.50),
            p95: rank(0.95),
            max: samples.last().copied().unwrap_or(0.0),
        }
    }

    fn row(&self) -> String {
        format!("{} / {} / {}", ms(self.p50), ms(self.p95), ms(self.max))
    }
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else {
        format!("{v:.1} ms")
    }
}

fn yes(ok: bool) -> &'static str {
    if ok {
        "yes"
    } else {
        "**no**"
    }
}
