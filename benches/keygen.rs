//! `cargo bench --bench keygen`: RSA key generation, certboot's (`PrivateKey::generate`: certboot-rsa
//! up to 4096 bits, AWS-LC for 8192)
//! beside Go's (`crypto/rsa.GenerateKey`, bench/keygen-go), on the same machine in the same run.
//!
//! For each size, interleaved rounds: a block of certboot's keys, then a block of Go's (one
//! keygen-go process per round, after its own 2048-bit warm-up key; certboot warms up once, with a
//! key of the size measured), the order swapped every round so that load from other processes on a
//! shared machine falls on both sides alike; up to a count or a time budget per side (at least 5
//! keys). A random prime search is noisy (an RSA-2048 median moves 10-20% between runs of 100
//! keys), so each median comes with its 95% confidence interval (distribution-free, from order
//! statistics). Prints a markdown table (p50 with its interval, p95, max, and the goal: certboot's
//! p50 <= Go's p50, p95 <= 2x Go's p95) and writes it to target/bench/keygen.md.
//!
//! Needs the Go toolchain (`go` on PATH, or /usr/local/go/bin/go; GOFLAGS=-mod=mod, no modules
//! are downloaded). Knobs: `CERTBOOT_BENCH_KEYGEN_SCALE` multiplies the counts (default 1);
//! `CERTBOOT_BENCH_KEYGEN_ONLY=rsa-2048` (comma-separated) measures only those sizes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use certboot_core::pki::key::{KeyAlgorithm, PrivateKey};

/// (algorithm, bits, keys, time budget per side, keys per round)
const SIZES: [(KeyAlgorithm, u32, usize, u64, usize); 3] = [
    (KeyAlgorithm::Rsa2048, 2048, 400, 60, 25),
    (KeyAlgorithm::Rsa4096, 4096, 40, 90, 5),
    (KeyAlgorithm::Rsa8192, 8192, 12, 150, 3),
];

fn main() {
    let scale: usize = std::env::var("CERTBOOT_BENCH_KEYGEN_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let only = std::env::var("CERTBOOT_BENCH_KEYGEN_ONLY").unwrap_or_default();
    let go = build_go();
    let mut report = String::from(
        "| key | keys (certboot / Go) | certboot p50 [95% CI] / p95 / max | Go p50 [95% CI] / p95 / max | p50 <= Go p50 | p95 <= 2x Go p95 |\n|---|---|---|---|---|---|\n",
    );
    for (algorithm, bits, count, budget, per_round) in SIZES {
        if !only.is_empty() && !only.split(',').any(|name| name.trim() == algorithm.name()) {
            continue;
        }
        let count = count * scale;
        eprintln!("bench: {algorithm}: certboot and Go, up to {count} keys or {budget} s each, {per_round} a round");
        let (ours, theirs) = interleaved(&go, algorithm, bits, count, per_round, budget);
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
        "\ncertboot: certboot-rsa for 2048-4096, aws-lc-rs for 8192 (the [profile.bench] build); Go: {go_version}; {} CPUs.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));
    println!("{report}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out).expect("target/bench");
    std::fs::write(out.join("keygen.md"), report).expect("target/bench/keygen.md");
}

/// Rounds of `per_round` keys, certboot's and Go's in turn (the first side alternating), until
/// each side has `count` keys or has spent `budget` seconds generating them (after at least 5).
fn interleaved(
    go: &Path,
    algorithm: KeyAlgorithm,
    bits: u32,
    count: usize,
    per_round: usize,
    budget: u64,
) -> (Vec<f64>, Vec<f64>) {
    drop(PrivateKey::generate(algorithm).expect("warm-up key"));
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut spent_ours, mut spent_theirs) = (Duration::ZERO, Duration::ZERO);
    let open = |n: usize, spent: Duration| n < count && (n < 5 || spent.as_secs() < budget);
    let mut round = 0;
    while open(ours.len(), spent_ours) || open(theirs.len(), spent_theirs) {
        for side in [round % 2, 1 - round % 2] {
            if side == 0 && open(ours.len(), spent_ours) {
                let n = per_round.min(count - ours.len());
                let samples = certboot_samples(algorithm, n);
                spent_ours += Duration::from_secs_f64(samples.iter().sum::<f64>() / 1000.0);
                ours.extend(samples);
            } else if side == 1 && open(theirs.len(), spent_theirs) {
                let n = per_round.min(count - theirs.len());
                let samples = go_samples(go, bits, n);
                spent_theirs += Duration::from_secs_f64(samples.iter().sum::<f64>() / 1000.0);
                theirs.extend(samples);
            }
        }
        round += 1;
    }
    (ours, theirs)
}

fn certboot_samples(algorithm: KeyAlgorithm, count: usize) -> Vec<f64> {
    (0..count)
        .map(|_| {
            let t = Instant::now();
            let key = PrivateKey::generate(algorithm).expect("generate a key");
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            drop(key);
            ms
        })
        .collect()
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

/// `count` keys from one keygen-go process (after its own 2048-bit warm-up key).
fn go_samples(binary: &Path, bits: u32, count: usize) -> Vec<f64> {
    let out = Command::new(binary)
        .arg(format!("{bits}:{count}:86400"))
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
    /// The median's 95% confidence interval.
    p50_low: f64,
    p50_high: f64,
    p95: f64,
    max: f64,
}

impl Stats {
    /// Nearest-rank percentiles; the median's 95% confidence interval from order statistics (the
    /// ranks n/2 -+ 1.96 sqrt(n)/2, which hold the median with probability ~95% whatever the
    /// distribution).
    fn of(mut samples: Vec<f64>) -> Stats {
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        let at = |i: usize| samples[i.min(n - 1)];
        let rank = |p: f64| at(((p * n as f64).ceil() as usize).max(1) - 1);
        let half_width = 1.96 * (n as f64).sqrt() / 2.0;
        Stats {
            n,
            p50: rank(0.50),
            p50_low: at(((n as f64 / 2.0 - half_width).floor().max(1.0) as usize) - 1),
            p50_high: at((n as f64 / 2.0 + half_width).ceil() as usize),
            p95: rank(0.95),
            max: samples.last().copied().unwrap_or(0.0),
        }
    }

    fn row(&self) -> String {
        format!(
            "{} [{}-{}] / {} / {}",
            ms(self.p50),
            ms(self.p50_low),
            ms(self.p50_high),
            ms(self.p95),
            ms(self.max)
        )
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
