//! End-to-end: certboot as a sidecar renewing short-lived certificates against a real control plane.
//! The harness signer issues 15-20 s certificates so that several renewals happen in one test.

mod harness;
mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{entries, http_get, read_pair, Certboot};

const NS: &str = "default";
const SIGNER: &str = "example.com/short";

/// The leaf serial of the pair on disk, once both files exist.
fn current_serial(dir: &Path) -> Option<String> {
    let cert = std::fs::read(dir.join("cert.pem")).ok()?;
    let key = std::fs::read_to_string(dir.join("key.pem")).ok()?;
    certboot_core::pki::verify::verify_pair(&cert, &key, certboot_core::timefmt::unix_now())
        .ok()
        .map(|v| v.serial)
}

/// Polls until `count` distinct serials have been on disk (bounded by `deadline`).
async fn collect_serials(dir: &Path, count: usize, deadline: Duration) -> BTreeSet<String> {
    let until = Instant::now() + deadline;
    let mut seen = BTreeSet::new();
    while seen.len() < count {
        if let Some(serial) = current_serial(dir) {
            seen.insert(serial);
        }
        assert!(
            Instant::now() < until,
            "only {} of {count} certificates within {deadline:?}",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen
}

/// Reads the pair continuously, as an app would, and records what it saw.
struct Reader {
    stop: Arc<AtomicBool>,
    reads: Arc<AtomicUsize>,
    handle: std::thread::JoinHandle<Result<(), String>>,
}

impl Reader {
    fn start(dir: &Path) -> Reader {
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicUsize::new(0));
        let (dir, stop2, reads2) = (dir.to_path_buf(), stop.clone(), reads.clone());
        let handle = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                read_once(&dir)?;
                reads2.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        });
        Reader {
            stop,
            reads,
            handle,
        }
    }

    fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let result = self.handle.join().expect("reader thread");
        if let Err(problem) = result {
            panic!("a reader saw a bad pair: {problem}");
        }
        self.reads.load(Ordering::Relaxed)
    }
}

/// One read: the pair through the `..data` generation it resolves to must match; the stable
/// names must always hold a complete certificate and a complete key.
fn read_once(dir: &Path) -> Result<(), String> {
    let now = certboot_core::timefmt::unix_now();
    let generation = std::fs::read_link(dir.join("..data")).map_err(|e| format!("..data: {e}"))?;
    let cert = std::fs::read(dir.join(&generation).join("cert.pem"));
    let key = std::fs::read_to_string(dir.join(&generation).join("key.pem"));
    match (cert, key) {
        (Ok(cert), Ok(key)) => {
            certboot_core::pki::verify::verify_pair(&cert, &key, now)
                .map_err(|e| format!("generation {generation:?}: {e}"))?;
        }
        // A generation two renewals old may be removed between readlink and open; that is a
        // stale resolution, not a bad pair, provided ..data has moved on.
        _ if std::fs::read_link(dir.join("..data")).ok().as_ref() != Some(&generation) => {}
        (cert, key) => {
            return Err(format!(
                "current generation {generation:?} unreadable: {:?} {:?}",
                cert.err(),
                key.err()
            ))
        }
    }
    let cert = std::fs::read(dir.join("cert.pem")).map_err(|e| format!("cert.pem: {e}"))?;
    let blocks = pem::parse_many(&cert).map_err(|e| format!("cert.pem partial: {e}"))?;
    if blocks.is_empty() {
        return Err("cert.pem empty".into());
    }
    let key = std::fs::read_to_string(dir.join("key.pem")).map_err(|e| format!("key.pem: {e}"))?;
    certboot_core::pki::key::PrivateKey::from_pem(&key)
        .map_err(|e| format!("key.pem partial: {e}"))?;
    Ok(())
}

/// A uniquely named shell that appends a line to `log` on every SIGHUP.
fn reload_target(tmp: &Path) -> (std::process::Child, String, PathBuf) {
    let name = format!("cbapp{}", std::process::id() % 100_000);
    let program = tmp.join(&name);
    std::fs::copy("/bin/sh", &program).expect("copy sh");
    let log = tmp.join("reloads.log");
    std::fs::write(&log, "").expect("reload log");
    let script = format!(
        "trap 'echo hup >> {}' HUP; while :; do sleep 0.05; done",
        log.display()
    );
    let child = std::process::Command::new(&program)
        .args(["-c", &script])
        .spawn()
        .expect("spawn app");
    (child, name, log)
}

#[tokio::test]
async fn renews_repeatedly_with_fresh_keys_atomic_swaps_and_reload_signals() {
    let Some((cp, kubeconfig, tmp)) = harness::with_certboot_rbac_deleting(NS).await else {
        return;
    };
    let _signer = cp.custom_signer(SIGNER, Duration::from_secs(15));
    let dir = tmp.path().join("certs");
    let (mut app, app_name, reload_log) = reload_target(tmp.path());
    let metrics_addr = format!("127.0.0.1:{}", harness::process::free_port());
    let certboot = Certboot::new(&kubeconfig, &dir, NS, "side-0")
        .env("CERTBOOT_SIGNER_NAME", SIGNER)
        .env("CERTBOOT_MODE", "sidecar")
        .env("CERTBOOT_RELOAD_SIGNAL", "SIGHUP")
        .env("CERTBOOT_RELOAD_PROCESS", &app_name)
        .env("CERTBOOT_DELETE_CSR", "true")
        .env("CERTBOOT_METRICS_ADDR", &metrics_addr);
    let mut sidecar = certboot.spawn();
    sidecar
        .wait_for_log("next renewal at", Duration::from_secs(30))
        .await;
    let reader = Reader::start(&dir);

    let serials = collect_serials(&dir, 4, Duration::from_secs(120)).await;
    let reads = reader.finish();
    assert!(reads > 100, "the reader checked the pair {reads} times");
    assert_eq!(
        serials.len(),
        4,
        "initial certificate plus three renewals, each with a new serial"
    );

    // The signal follows the swap, and the app's trap runs once its `sleep 0.05` ends: the third
    // SIGHUP may land just after the fourth serial was seen, so wait for it (bounded).
    let reloads_by = Instant::now() + Duration::from_secs(10);
    let reloads = loop {
        let reloads = std::fs::read_to_string(&reload_log)
            .expect("reload log")
            .lines()
            .count();
        if reloads >= 3 || Instant::now() > reloads_by {
            break reloads;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        reloads >= 3,
        "the app got a SIGHUP after each renewal: {reloads}"
    );
    let generations = entries(&dir)
        .into_iter()
        .filter(|e| e.starts_with("..") && e != "..data")
        .count();
    assert!(
        generations <= 2,
        "old generations are cleaned up: {:?}",
        entries(&dir)
    );
    let log = sidecar.stderr_so_far();
    assert!(
        log.contains(":side-0:") && log.contains("deleted CSR"),
        "{log}"
    );
    read_pair(&dir);
    let metrics = http_get(&metrics_addr, "/metrics").expect("GET /metrics");
    assert!(
        metrics.contains("certboot_renewals_total{result=\"success\"}"),
        "{metrics}"
    );
    // OpenMetrics text, as prometheus-client writes it (not Prometheus 0.0.4 text).
    assert!(
        metrics.contains(
            "\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"
        ) && metrics.ends_with("# EOF\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("certboot_certificate_not_after_seconds"),
        "{metrics}"
    );
    assert!(
        http_get(&metrics_addr, "/healthz")
            .expect("GET /healthz")
            .starts_with("HTTP/1.1 200"),
        "healthy while the pair is valid"
    );

    sidecar.signal(libc::SIGTERM);
    let finished = sidecar.finish(Duration::from_secs(5)).await;
    finished.assert_code(0);
    assert!(
        entries(&dir).iter().all(|e| !e.ends_with("_tmp")),
        "no temp files after SIGTERM: {:?}",
        entries(&dir)
    );
    read_pair(&dir);
    let _ = app.kill();
    let _ = app.wait();
}

#[tokio::test]
async fn api_server_down_during_renewal_keeps_the_old_pair_and_recovers() {
    let Some((cp, kubeconfig, tmp)) = harness::with_certboot_rbac(NS).await else {
        return;
    };
    // 90 s certificates renewed 80 s before expiry: the renewal window opens after ~10 s and the
    // old certificate stays valid for the whole outage.
    let _signer = cp.custom_signer(SIGNER, Duration::from_secs(90));
    let dir = tmp.path().join("certs");
    let mut sidecar = Certboot::new(&kubeconfig, &dir, NS, "side-1")
        .env("CERTBOOT_SIGNER_NAME", SIGNER)
        .env("CERTBOOT_MODE", "sidecar")
        .env("CERTBOOT_RENEW_BEFORE", "80s")
        .spawn();
    sidecar
        .wait_for_log("next renewal at", Duration::from_secs(30))
        .await;
    let before = std::fs::read(dir.join("cert.pem")).expect("first certificate");
    let first_serial = current_serial(&dir).expect("first pair valid");

    cp.stop_apiserver();
    let log = sidecar
        .wait_for_log(
            "the current certificate stays in place",
            Duration::from_secs(40),
        )
        .await;
    assert!(log.contains("retrying in"), "{log}");
    assert_eq!(
        std::fs::read(dir.join("cert.pem")).expect("cert.pem still there"),
        before,
        "the old pair is untouched"
    );
    assert_eq!(
        current_serial(&dir).as_deref(),
        Some(first_serial.as_str()),
        "the old pair still matches"
    );

    cp.start_apiserver().await;
    let renewed = harness::poll_until(
        Duration::from_secs(90),
        "a renewed pair on disk",
        || async { current_serial(&dir).filter(|serial| *serial != first_serial) },
    )
    .await;
    assert_ne!(
        renewed, first_serial,
        "renewed once the API server was back"
    );
    read_pair(&dir);
}
