//! Key generation in process: `PrivateKey::generate` per algorithm.

use std::time::{Duration, Instant};

use certboot_core::pki::key::{KeyAlgorithm, PrivateKey};

pub(crate) struct KeygenResult {
    pub(crate) algorithm: KeyAlgorithm,
    pub(crate) samples_ms: Vec<f64>,
}

/// Figure 3: `PrivateKey::generate` in process, per algorithm, until a count or a time budget.
pub(crate) fn keygen_bench() -> Vec<KeygenResult> {
    KeyAlgorithm::ALL
        .iter()
        .map(|&algorithm| {
            let (count, budget) = match algorithm {
                KeyAlgorithm::Rsa2048 => (50, Duration::from_secs(30)),
                KeyAlgorithm::Rsa3072 => (30, Duration::from_secs(40)),
                KeyAlgorithm::Rsa4096 => (20, Duration::from_secs(60)),
                _ => (1000, Duration::from_secs(10)),
            };
            eprintln!("bench: key generation {algorithm}: up to {count} keys or {budget:?}");
            let _ = PrivateKey::generate(algorithm).expect("warm-up key");
            let start = Instant::now();
            let mut samples_ms = Vec::new();
            while samples_ms.len() < count && (samples_ms.len() < 5 || start.elapsed() < budget) {
                let t = Instant::now();
                let key = PrivateKey::generate(algorithm).expect("generate a key");
                samples_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                drop(key);
            }
            KeygenResult {
                algorithm,
                samples_ms,
            }
        })
        .collect()
}
