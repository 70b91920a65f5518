//! `bench/run.sh` (or `cargo bench --bench pod_certificate` once the release binary exists): how
//! fast, small and frugal certboot is on the way to a pod certificate, measured against a real
//! etcd + kube-apiserver + kube-controller-manager (`KUBEBUILDER_ASSETS`, from
//! `scripts/testenv.sh`) on loopback; the scale scenario also on each control plane in
//! `CERTBOOT_BENCH_COMPARE_ASSETS` (colon-separated directories, e.g. the oldest version), side by
//! side in one table.
//!
//! It measures the shipped artefact, the release static binary
//! (`target/x86_64-unknown-linux-gnu/release/certboot`, built by `bench/run.sh` with
//! `scripts/build-static.sh`),
//! and prints one markdown report (also written to `target/bench/pod_certificate.md`):
//!
//! 1. certboot's own time per key algorithm, with the signer's time excluded: process spawn →
//!    the API server receiving the CSR create (audit `requestReceivedTimestamp`), and the signer's
//!    `PUT .../status` completing (audit `stageTimestamp`) → process exit (`waitpid` in a thread).
//!    All clocks are this machine's wall clock (`CLOCK_REALTIME`, microseconds).
//! 2. Peak RSS (`wait4` `ru_maxrss`) of three extra runs per series, started through a small
//!    helper process (see [`rss_helper`]).
//! 3. Key generation cost, in process (`certboot::key::PrivateKey::generate`).
//! 4. Binary size (and whether it is static and stripped).
//! 5. N certboot processes at once, each as its own service account, so that every API request
//!    is counted per pod from the audit log; and the same at a slow signer (issue after 30 s),
//!    next to a naive client that polls with a GET every second. The API server runs at `--v=1`,
//!    so the watchers its watch cache closes for falling behind are counted from its log.
//!
//! Knobs (environment): `CERTBOOT_BENCH_BINARY`, `CERTBOOT_BENCH_RUNS` (30),
//! `CERTBOOT_BENCH_SLOW_RUNS` (10, RSA-3072/4096), `CERTBOOT_BENCH_SCALE` (200),
//! `CERTBOOT_BENCH_DELAYED` (20), `CERTBOOT_BENCH_DELAY_SECS` (30), `CERTBOOT_BENCH_SKIP`
//! (comma-separated: `keygen`, `overhead`, `scale`, `delayed`), `CERTBOOT_BENCH_COMPARE_ASSETS`
//! (more control planes for the scale scenario), `CERTBOOT_BENCH_LOG` (certboot's
//! `CERTBOOT_LOG` filter), `CERTBOOT_BENCH_KEEP` (keep certboot's logs and files).
//!
//! No timing is asserted: it reports. Every loop and wait is bounded, and every process it
//! started is killed on the way out.

#[path = "../tests/harness/mod.rs"]
mod harness;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use certboot::key::{KeyAlgorithm, PrivateKey};
use futures::StreamExt;
use harness::{ControlPlane, ControlPlaneOptions, SignerBehaviour, ADMIN_USER};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use kube::api::{Api, ObjectMeta, PostParams};
use serde_json::Value;

/// The namespace of the per-run overhead series (RBAC from `manifests/rbac.yaml`).
const NS: &str = "bench";
/// A signer that approves and issues at once (the harness's CustomSigner).
const INSTANT_SIGNER: &str = "example.com/bench-instant";
/// A signer that approves at once and issues after the configured delay.
const DELAYED_SIGNER: &str = "example.com/bench-delayed";
/// Runs discarded before each overhead series (page cache, first TLS session on the server).
const WARMUP_RUNS: usize = 2;
/// Extra runs per series, through [`rss_helper`], for the peak RSS.
const RSS_RUNS: usize = 3;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(RSS_HELPER) {
        rss_helper(&args[2..]);
    }
    let settings = Settings::from_env();
    let _reaper = KillLeftovers;
    let mut report = Report::default();
    report.machine(&settings);

    let binary = settings.binary.clone();
    if !binary.is_file() {
        eprintln!(
            "bench: {} not found. Build it first (bench/run.sh does):\n  \
             RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --release --target x86_64-unknown-linux-gnu",
            binary.display()
        );
        std::process::exit(1);
    }
    report.binary(&binary);
    if !settings.skip("keygen") {
        report.keygen(&keygen_bench());
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let options = ControlPlaneOptions {
            apiserver_verbosity: 1,
            ..ControlPlaneOptions::default()
        };
        let Some(cp) = ControlPlane::start_with(options).await else {
            report.note("Control-plane figures skipped: KUBEBUILDER_ASSETS is not set.");
            return;
        };
        setup_rbac(&cp).await;
        let work = tempfile::Builder::new()
            .prefix("certboot-bench-")
            .tempdir()
            .expect("tempdir");
        let bench = Bench {
            cp: &cp,
            binary: &binary,
            work: work.path(),
            settings: &settings,
        };
        let _instant = cp.custom_signer(INSTANT_SIGNER, Duration::from_secs(3600));
        let _delayed = cp.custom_signer_with(
            DELAYED_SIGNER,
            Duration::from_secs(3600),
            SignerBehaviour::Delayed(settings.delay),
        );
        if !settings.skip("overhead") {
            report.overhead(&bench.overhead_series().await);
        }
        let mut scale = Vec::new();
        if !settings.skip("scale") {
            for events in [false, true] {
                scale.push(bench.certboot_scale(settings.scale, events).await);
            }
        }
        if !settings.skip("scale") {
            for assets in &settings.compare_assets {
                let results = compare_scale(assets, &binary, &settings).await;
                scale.extend(results);
            }
        }
        if !settings.skip("delayed") {
            scale.extend(bench.delayed_series().await);
        }
        if !scale.is_empty() {
            report.scale(&scale, &settings);
        }
        report.apiserver_version(&settings);
        if std::env::var_os("CERTBOOT_BENCH_KEEP").is_some() {
            eprintln!("bench: kept {}", work.keep().display());
        }
    });
    report.finish();
    let text = report.render();
    println!("{text}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench/pod_certificate.md");
    if std::fs::create_dir_all(out.parent().expect("parent")).is_ok()
        && std::fs::write(&out, &text).is_ok()
    {
        eprintln!("bench: report written to {}", out.display());
    }
}

// ---- settings ------------------------------------------------------------------------------

struct Settings {
    binary: PathBuf,
    runs: usize,
    slow_runs: usize,
    scale: usize,
    delayed: usize,
    delay: Duration,
    skip: Vec<String>,
    /// More control planes (KUBEBUILDER_ASSETS-style directories) for the scale scenario.
    compare_assets: Vec<PathBuf>,
}

impl Settings {
    fn from_env() -> Settings {
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

    fn skip(&self, part: &str) -> bool {
        self.skip.iter().any(|s| s == part)
    }
}

// ---- processes -----------------------------------------------------------------------------

/// Children not yet reaped; killed when the bench ends (also on a panic).
static LIVE: Mutex<Vec<i32>> = Mutex::new(Vec::new());

struct KillLeftovers;

impl Drop for KillLeftovers {
    fn drop(&mut self) {
        for pid in LIVE.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            // SAFETY: kill(2) on a child we spawned and have not reaped (so the pid is ours).
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// First argument that turns this program into [`rss_helper`].
const RSS_HELPER: &str = "--rss-helper";

/// `pod_certificate --rss-helper OUT BINARY`: runs BINARY (environment and stdio inherited),
/// writes its `ru_maxrss` (KiB) into OUT and exits with its code.
///
/// Why a helper: a child's `ru_maxrss` starts from the peak RSS of the address space it was
/// spawned from (exec keeps the old mm's high-water mark), so a child spawned straight from this
/// bench would report at least the bench's own RSS. Spawned from this small fresh process, the
/// floor is the helper's RSS, reported separately as "helper floor" (BINARY = /bin/true).
fn rss_helper(args: &[String]) -> ! {
    let (Some(out), Some(binary)) = (args.first(), args.get(1)) else {
        eprintln!("usage: pod_certificate {RSS_HELPER} OUT BINARY");
        std::process::exit(2);
    };
    let child = Command::new(binary).spawn().expect("spawn");
    let pid = child.id() as i32;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    std::fs::write(out, usage.ru_maxrss.to_string()).expect("write the RSS file");
    let code = if reaped == pid && libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        1
    };
    std::process::exit(code)
}

/// Peak RSS (KiB) of `binary` run with `env`, through [`rss_helper`]; `None` when it failed.
fn peak_rss_kib(binary: &Path, env: &[(String, String)], logs: &Path, name: &str) -> Option<i64> {
    let out = logs.join(format!("{name}.maxrss"));
    let status = Command::new(std::env::current_exe().ok()?)
        .arg(RSS_HELPER)
        .arg(&out)
        .arg(binary)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(logs.join(format!("{name}.stdout"))).ok()?)
        .stderr(std::fs::File::create(logs.join(format!("{name}.stderr"))).ok()?)
        .status()
        .ok()?;
    let kib = std::fs::read_to_string(&out).ok()?.trim().parse().ok()?;
    status.success().then_some(kib)
}

/// How a certboot process ended.
#[derive(Clone, Copy, Debug)]
struct Exit {
    /// Exit code, or 128 + signal.
    code: i32,
    /// Wall clock (µs since the epoch) right after `wait4` returned.
    at_us: i64,
}

/// A started certboot process.
struct Spawned {
    pid: i32,
    spawned_us: i64,
    exit: mpsc::Receiver<Exit>,
    stderr: PathBuf,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as i64
}

/// Starts `binary` with exactly `env` (like a kubelet: nothing inherited); a thread blocks in
/// `waitpid` for it and reports the exit time.
fn spawn_certboot(binary: &Path, env: &[(String, String)], logs: &Path, name: &str) -> Spawned {
    let stdout = logs.join(format!("{name}.stdout"));
    let stderr = logs.join(format!("{name}.stderr"));
    let mut command = Command::new(binary);
    command
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr).expect("stderr file"));
    let spawned_us = now_us();
    let child = command.spawn().expect("spawn certboot");
    let pid = child.id() as i32;
    LIVE.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _child = child; // reaped below with wait4, not through Child
        let mut status = 0;
        // SAFETY: waitpid(2) on our own child.
        let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
        let at_us = now_us();
        LIVE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p| *p != pid);
        let code = if reaped != pid {
            -1
        } else if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        };
        let _ = tx.send(Exit { code, at_us });
    });
    Spawned {
        pid,
        spawned_us,
        exit: rx,
        stderr,
    }
}

impl Spawned {
    /// Waits for the exit; kills the process after `deadline` (the exit then says SIGKILL).
    async fn finish(&self, deadline: Instant) -> Exit {
        let mut killed = false;
        loop {
            match self.exit.try_recv() {
                Ok(exit) => return exit,
                Err(mpsc::TryRecvError::Disconnected) => {
                    return Exit {
                        code: -1,
                        at_us: now_us(),
                    }
                }
                Err(mpsc::TryRecvError::Empty) => {}
            }
            if !killed && Instant::now() > deadline {
                eprintln!(
                    "bench: pid {} still running at its deadline; killing it",
                    self.pid
                );
                // SAFETY: kill(2) on our unreaped child.
                unsafe {
                    libc::kill(self.pid, libc::SIGKILL);
                }
                killed = true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

// ---- the control-plane figures -------------------------------------------------------------

struct Bench<'a> {
    cp: &'a ControlPlane,
    binary: &'a Path,
    work: &'a Path,
    settings: &'a Settings,
}

/// One measured init-mode run.
struct Run {
    csr: String,
    spawned_us: i64,
    exit: Exit,
}

/// One overhead series: an algorithm, with or without Events.
struct Series {
    algorithm: &'static str,
    events: bool,
    runs: Vec<Run>,
    /// Peak RSS (KiB) of the separate [`RSS_RUNS`] runs through [`rss_helper`].
    rss_kib: Vec<i64>,
    /// (start → create received, start → created, issued → exit, own, total), ms, per run.
    figures: Vec<[f64; 5]>,
    failures: usize,
}

/// N pods at once (or a delayed batch): outcome and API requests per pod.
struct ScaleResult {
    label: String,
    client: &'static str,
    pods: usize,
    events: Option<bool>,
    succeeded: usize,
    wall: Duration,
    per_pod_ms: Vec<f64>,
    /// class ("create csr") → count per pod (one entry per pod).
    requests: BTreeMap<String, Vec<usize>>,
    throttled: usize,
    retries_logged: usize,
    /// CSR watchers the API server's watch cache closed during the batch, from its log (`None`
    /// where batches ran at the same time and the count cannot be attributed).
    watches_closed: Option<usize>,
}

impl Bench<'_> {
    /// The environment of one run of the overhead series (instant signer).
    fn overhead_env(
        &self,
        kubeconfig: &Path,
        pod: &str,
        algorithm: &str,
        events: bool,
    ) -> Vec<(String, String)> {
        self.env(
            kubeconfig,
            NS,
            pod,
            &[
                ("CERTBOOT_SIGNER_NAME", INSTANT_SIGNER),
                ("CERTBOOT_KEY_ALGORITHM", algorithm),
                ("CERTBOOT_EVENTS", if events { "true" } else { "false" }),
                ("CERTBOOT_TIMEOUT", "60s"),
            ],
        )
    }

    /// The environment of one certboot init container.
    fn env(
        &self,
        kubeconfig: &Path,
        namespace: &str,
        pod: &str,
        extra: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let cert_dir = self.work.join("certs").join(namespace).join(pod);
        let mut env: Vec<(String, String)> = vec![
            ("KUBECONFIG".into(), kubeconfig.display().to_string()),
            ("POD_NAME".into(), pod.into()),
            ("POD_NAMESPACE".into(), namespace.into()),
            (
                "POD_UID".into(),
                support::fake_uid(&format!("{namespace}/{pod}")),
            ),
            ("POD_IP".into(), "10.0.0.7".into()),
            ("CERTBOOT_CERT_DIR".into(), cert_dir.display().to_string()),
            ("CERTBOOT_TERMINATION_LOG".into(), "off".into()),
            (
                "CERTBOOT_DNS_NAMES".into(),
                format!("{pod}.{namespace}.svc"),
            ),
        ];
        if let Ok(filter) = std::env::var("CERTBOOT_BENCH_LOG") {
            env.push(("CERTBOOT_LOG".into(), filter));
        }
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push(((*k).into(), (*v).into()));
        }
        env
    }

    fn logs(&self, series: &str) -> PathBuf {
        let dir = self.work.join("logs").join(series);
        std::fs::create_dir_all(&dir).expect("log dir");
        dir
    }

    /// Figure 1 + 2: sequential init runs per key algorithm against the instant signer.
    async fn overhead_series(&self) -> Vec<Series> {
        self.cp
            .apply_manifest_file(
                concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/rbac.yaml"),
                NS,
            )
            .await;
        let kubeconfig = self.cp.service_account_kubeconfig(NS, "certboot").await;
        let plan: [(&'static str, bool, usize); 7] = [
            ("ecdsa-p256", true, self.settings.runs),
            ("ecdsa-p256", false, self.settings.runs),
            ("ecdsa-p384", true, self.settings.runs),
            ("ed25519", true, self.settings.runs),
            ("rsa-2048", true, self.settings.runs),
            ("rsa-3072", true, self.settings.slow_runs),
            ("rsa-4096", true, self.settings.slow_runs),
        ];
        let mut all = Vec::new();
        for (algorithm, events, count) in plan {
            let tag = format!("{}-{}", algorithm, if events { "ev" } else { "noev" });
            eprintln!("bench: overhead {tag}: {WARMUP_RUNS} warm-up + {count} runs");
            let logs = self.logs(&tag);
            let mut runs = Vec::new();
            let mut failures = 0;
            for i in 0..WARMUP_RUNS + count {
                let pod = format!("o-{tag}-{i:03}");
                let env = self.overhead_env(&kubeconfig, &pod, algorithm, events);
                let spawned = spawn_certboot(self.binary, &env, &logs, &pod);
                let exit = spawned
                    .finish(Instant::now() + Duration::from_secs(90))
                    .await;
                if exit.code != 0 {
                    failures += 1;
                    eprintln!(
                        "bench: {pod} exited {}:\n{}",
                        exit.code,
                        spawned.stderr_text()
                    );
                    continue;
                }
                if i >= WARMUP_RUNS {
                    runs.push(Run {
                        csr: support::csr_name(NS, &pod, env_value(&env, "POD_UID")),
                        spawned_us: spawned.spawned_us,
                        exit,
                    });
                }
                // Let the signer's and certboot's trailing requests settle between runs.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let mut rss_kib = Vec::new();
            for i in 0..RSS_RUNS {
                let pod = format!("r-{tag}-{i:03}");
                let env = self.overhead_env(&kubeconfig, &pod, algorithm, events);
                let binary = self.binary;
                match tokio::task::block_in_place(|| peak_rss_kib(binary, &env, &logs, &pod)) {
                    Some(kib) => rss_kib.push(kib),
                    None => failures += 1,
                }
            }
            all.push(Series {
                algorithm,
                events,
                runs,
                rss_kib,
                figures: Vec::new(),
                failures,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let audit = Audit::load(self.cp);
        for series in &mut all {
            for run in &series.runs {
                let Some(created) = audit.find(|e| {
                    e["verb"] == "create"
                        && e["objectRef"]["resource"] == "certificatesigningrequests"
                        && e["objectRef"]["name"] == run.csr.as_str()
                        && e["responseStatus"]["code"] == 201
                }) else {
                    eprintln!("bench: no audit event for the create of {}", run.csr);
                    series.failures += 1;
                    continue;
                };
                let Some(issued) = audit.find(|e| {
                    e["user"]["username"] == ADMIN_USER
                        && e["verb"] == "update"
                        && e["objectRef"]["subresource"] == "status"
                        && e["objectRef"]["name"] == run.csr.as_str()
                        && e["responseStatus"]["code"] == 200
                }) else {
                    eprintln!(
                        "bench: no audit event for the signer's status update of {}",
                        run.csr
                    );
                    series.failures += 1;
                    continue;
                };
                let (Some(received), Some(created), Some(issued)) = (
                    micros(created, "requestReceivedTimestamp"),
                    micros(created, "stageTimestamp"),
                    micros(issued, "stageTimestamp"),
                ) else {
                    series.failures += 1;
                    continue;
                };
                let ms = |us: i64| us as f64 / 1000.0;
                let to_request = received - run.spawned_us;
                let from_issue = run.exit.at_us - issued;
                series.figures.push([
                    ms(to_request),
                    ms(created - run.spawned_us),
                    ms(from_issue),
                    ms(to_request + from_issue),
                    ms(run.exit.at_us - run.spawned_us),
                ]);
            }
        }
        all
    }

    /// Service-account kubeconfigs `pod-0..n` in `namespace`, one identity per pod.
    async fn identities(&self, namespace: &str, n: usize) -> Vec<(String, String)> {
        self.cp.create_namespace(namespace).await;
        futures::stream::iter(0..n)
            .map(|i| async move {
                let account = format!("pod-{i:03}");
                let token = self.cp.service_account_token(namespace, &account).await;
                (account, token)
            })
            .buffered(8)
            .collect()
            .await
    }

    /// Figure 5: `n` certboot processes started at once against the instant signer.
    async fn certboot_scale(&self, n: usize, events: bool) -> ScaleResult {
        let namespace = if events {
            "scale-events"
        } else {
            "scale-noevents"
        };
        eprintln!("bench: scale: {n} certboot processes at once ({namespace})");
        let label = format!(
            "{n} pods at once, instant signer, Kubernetes {}",
            self.cp.version()
        );
        let closed_before = self.watches_closed();
        let mut result = self
            .certboot_batch(namespace, n, events, INSTANT_SIGNER, label)
            .await;
        result.watches_closed = Some(self.watches_closed() - closed_before);
        result
    }

    /// CSR watchers closed so far by the API server's watch cache for not taking events fast
    /// enough (kube-apiserver logs each at `--v=1`; the client sees a watch that ends cleanly).
    fn watches_closed(&self) -> usize {
        // v1.20: "Forcing watcher close due to unresponsiveness: *certificates.CertificateSigningRequest";
        // 1.37: "Forcing certificatesigningrequests.certificates.k8s.io watcher close due to unresponsiveness: ...".
        std::fs::read_to_string(self.cp.log_path("kube-apiserver"))
            .map(|log| {
                log.lines()
                    .filter(|l| l.contains("watcher close due to unresponsiveness"))
                    .filter(|l| {
                        l.contains("certificates.CertificateSigningRequest")
                            || l.contains("certificatesigningrequests.certificates.k8s.io")
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    async fn certboot_batch(
        &self,
        namespace: &str,
        n: usize,
        events: bool,
        signer: &str,
        label: String,
    ) -> ScaleResult {
        let identities = self.identities(namespace, n).await;
        let logs = self.logs(namespace);
        let kubeconfigs: Vec<PathBuf> = identities
            .iter()
            .map(|(_, token)| {
                self.cp
                    .write_kubeconfig(&self.cp.dir().join("kubeconfigs"), token)
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(600);
        let started: Vec<(String, Spawned)> = identities
            .iter()
            .zip(&kubeconfigs)
            .map(|((account, _), kubeconfig)| {
                let env = self.env(
                    kubeconfig,
                    namespace,
                    account,
                    &[
                        ("CERTBOOT_SIGNER_NAME", signer),
                        ("CERTBOOT_EVENTS", if events { "true" } else { "false" }),
                        ("CERTBOOT_TIMEOUT", "540s"),
                    ],
                );
                let spawned = spawn_certboot(self.binary, &env, &logs, account);
                (account.clone(), spawned)
            })
            .collect();
        let mut exits = Vec::new();
        for (_, spawned) in &started {
            exits.push(spawned.finish(deadline).await);
        }
        let first = started.iter().map(|(_, s)| s.spawned_us).min().unwrap_or(0);
        let last = exits.iter().map(|e| e.at_us).max().unwrap_or(first);
        let mut succeeded = 0;
        let mut retries_logged = 0;
        let mut per_pod_ms = Vec::new();
        for ((account, spawned), exit) in started.iter().zip(&exits) {
            let stderr = spawned.stderr_text();
            retries_logged += stderr.matches(" WARN ").count();
            let dir = self.work.join("certs").join(namespace).join(account);
            if exit.code == 0 && pair_ok(&dir) {
                succeeded += 1;
            } else {
                eprintln!(
                    "bench: {namespace}/{account} exited {}:\n{stderr}",
                    exit.code
                );
            }
            per_pod_ms.push((exit.at_us - spawned.spawned_us) as f64 / 1000.0);
        }
        let (requests, throttled) = self.count_requests(namespace, &identities).await;
        ScaleResult {
            label,
            client: "certboot",
            pods: n,
            events: Some(events),
            succeeded,
            wall: Duration::from_micros((last - first).max(0) as u64),
            per_pod_ms,
            requests,
            throttled,
            retries_logged,
            watches_closed: None,
        }
    }

    /// Counts each pod's API requests (its service account in `namespace`) from the audit log,
    /// by verb and resource.
    async fn count_requests(
        &self,
        namespace: &str,
        identities: &[(String, String)],
    ) -> (BTreeMap<String, Vec<usize>>, usize) {
        let users: Vec<String> = identities
            .iter()
            .map(|(account, _)| format!("system:serviceaccount:{namespace}:{account}"))
            .collect();
        // Watches log ResponseComplete when the client hangs up; give the server a moment.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let audit = Audit::load(self.cp);
        let index: HashMap<&str, usize> = users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.as_str(), i))
            .collect();
        let mut requests: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut throttled = 0;
        for event in &audit.events {
            let Some(&i) = event["user"]["username"]
                .as_str()
                .and_then(|u| index.get(u))
            else {
                continue;
            };
            if event["responseStatus"]["code"] == 429 {
                throttled += 1;
            }
            let code = event["responseStatus"]["code"].as_i64().unwrap_or(0);
            let mut class = class(event);
            if code >= 300 {
                let _ = write!(class, " ({code})");
            }
            requests
                .entry(class)
                .or_insert_with(|| vec![0; users.len()])[i] += 1;
        }
        (requests, throttled)
    }

    /// Figure 5, slow signer: certboot (Events on and off) and a naive 1 s polling client, all
    /// at once against a signer that issues `delay` after approving.
    async fn delayed_series(&self) -> Vec<ScaleResult> {
        let (n, delay) = (self.settings.delayed, self.settings.delay);
        eprintln!(
            "bench: delayed: {n}+{n} certboot processes and {n} polling clients, signer issues after {delay:?}"
        );
        let label = format!("{n} pods, signer issues after {}s", delay.as_secs());
        let poll_identities = self.identities("delay-poll", n).await;
        let (with_events, without_events, polled) = tokio::join!(
            self.certboot_batch("delay-events", n, true, DELAYED_SIGNER, label.clone()),
            self.certboot_batch("delay-noevents", n, false, DELAYED_SIGNER, label.clone()),
            self.poll_batch(&poll_identities, label.clone()),
        );
        vec![without_events, with_events, polled]
    }

    /// The baseline: create the CSR, then GET it every second until `status.certificate` is set.
    async fn poll_batch(&self, identities: &[(String, String)], label: String) -> ScaleResult {
        let namespace = "delay-poll";
        let start = Instant::now();
        let outcomes: Vec<Result<Duration, String>> =
            futures::future::join_all(identities.iter().map(|(account, token)| {
                let client = self.cp.endpoint().token_client(token);
                let name = format!("{namespace}:{account}:poll");
                naive_poll(client, name, Duration::from_secs(300))
            }))
            .await;
        let wall = start.elapsed();
        let succeeded = outcomes.iter().filter(|o| o.is_ok()).count();
        for problem in outcomes.iter().filter_map(|o| o.as_ref().err()) {
            eprintln!("bench: polling client failed: {problem}");
        }
        let (requests, throttled) = self.count_requests(namespace, identities).await;
        ScaleResult {
            label,
            client: "naive 1 s GET poll",
            pods: identities.len(),
            events: None,
            succeeded,
            wall,
            per_pod_ms: outcomes
                .iter()
                .filter_map(|o| o.as_ref().ok())
                .map(|d| d.as_secs_f64() * 1000.0)
                .collect(),
            requests,
            throttled,
            retries_logged: 0,
            watches_closed: None,
        }
    }
}

/// A polling client as people write them: create, then `GET` every second until issued.
async fn naive_poll(
    client: kube::Client,
    name: String,
    deadline: Duration,
) -> Result<Duration, String> {
    let api = Api::<CertificateSigningRequest>::all(client);
    let (_key, csr_pem) = harness::new_key_and_csr("naive-poller", &[]);
    let object = harness::csr_object(
        &name,
        &csr_pem,
        DELAYED_SIGNER,
        &["digital signature", "server auth"],
    );
    let start = Instant::now();
    api.create(&PostParams::default(), &object)
        .await
        .map_err(|e| format!("create {name}: {e}"))?;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let csr = api
            .get(&name)
            .await
            .map_err(|e| format!("get {name}: {e}"))?;
        if harness::issued_certificate(&csr).is_some() {
            return Ok(start.elapsed());
        }
        if start.elapsed() > deadline {
            return Err(format!("{name} not issued within {deadline:?}"));
        }
    }
}

/// certboot's ClusterRole (from `manifests/rbac.yaml`) and Events rights for every service
/// account, so that each pod of the scale series can run as its own identity.
/// The scale scenario (Events off, then on) on another control plane: the binaries in `assets`.
async fn compare_scale(assets: &Path, binary: &Path, settings: &Settings) -> Vec<ScaleResult> {
    let options = ControlPlaneOptions {
        apiserver_verbosity: 1,
        ..ControlPlaneOptions::default()
    };
    let cp = ControlPlane::start_from(assets, options).await;
    setup_rbac(&cp).await;
    let work = tempfile::Builder::new()
        .prefix("certboot-bench-")
        .tempdir()
        .expect("tempdir");
    let bench = Bench {
        cp: &cp,
        binary,
        work: work.path(),
        settings,
    };
    let _instant = cp.custom_signer(INSTANT_SIGNER, Duration::from_secs(3600));
    let mut results = Vec::new();
    for events in [false, true] {
        results.push(bench.certboot_scale(settings.scale, events).await);
    }
    results
}

async fn setup_rbac(cp: &ControlPlane) {
    cp.apply_manifest_file(
        concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/rbac.yaml"),
        NS,
    )
    .await;
    let client = cp.admin_client();
    let events_role = ClusterRole {
        metadata: ObjectMeta {
            name: Some("certboot-bench-events".into()),
            ..Default::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["events".into()]),
            verbs: vec!["create".into(), "patch".into()],
            ..Default::default()
        }]),
        ..Default::default()
    };
    Api::<ClusterRole>::all(client.clone())
        .create(&PostParams::default(), &events_role)
        .await
        .expect("create ClusterRole certboot-bench-events");
    for role in ["certboot", "certboot-bench-events"] {
        let binding = ClusterRoleBinding {
            metadata: ObjectMeta {
                name: Some(format!("{role}-bench-all-service-accounts")),
                ..Default::default()
            },
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: role.into(),
            },
            subjects: Some(vec![Subject {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "Group".into(),
                name: "system:serviceaccounts".into(),
                namespace: None,
            }]),
        };
        Api::<ClusterRoleBinding>::all(client.clone())
            .create(&PostParams::default(), &binding)
            .await
            .expect("create ClusterRoleBinding");
    }
}

fn env_value<'a>(env: &'a [(String, String)], key: &str) -> &'a str {
    env.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

/// Whether certboot left a matching, valid pair in `dir`.
fn pair_ok(dir: &Path) -> bool {
    let (Ok(cert), Ok(key)) = (
        std::fs::read(dir.join("cert.pem")),
        std::fs::read_to_string(dir.join("key.pem")),
    ) else {
        return false;
    };
    certboot::verify::verify_pair(&cert, &key, certboot::timefmt::unix_now()).is_ok()
}

// ---- audit log -----------------------------------------------------------------------------

/// The API server's audit log, one event per request (deduplicated by auditID, last stage wins:
/// a watch logs ResponseStarted and ResponseComplete).
struct Audit {
    events: Vec<Value>,
}

impl Audit {
    fn load(cp: &ControlPlane) -> Audit {
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut events: Vec<Value> = Vec::new();
        for event in cp.audit_events() {
            let id = event["auditID"].as_str().unwrap_or_default().to_owned();
            match index.get(&id) {
                Some(&i) => events[i] = event,
                None => {
                    index.insert(id, events.len());
                    events.push(event);
                }
            }
        }
        Audit { events }
    }

    fn find(&self, wanted: impl Fn(&Value) -> bool) -> Option<&Value> {
        self.events.iter().find(|e| wanted(e))
    }
}

/// Microseconds since the epoch of an audit timestamp field (RFC 3339, µs precision).
fn micros(event: &Value, field: &str) -> Option<i64> {
    let text = event[field].as_str()?;
    text.parse::<k8s_openapi::jiff::Timestamp>()
        .ok()
        .map(|t| t.as_microsecond())
}

/// "create csr", "watch csr", "create events", "update csr/status", ...
fn class(event: &Value) -> String {
    let object = &event["objectRef"];
    let resource = match object["resource"].as_str().unwrap_or("(none)") {
        "certificatesigningrequests" => "csr",
        other => other,
    };
    let sub = object["subresource"]
        .as_str()
        .map(|s| format!("/{s}"))
        .unwrap_or_default();
    format!("{} {resource}{sub}", event["verb"].as_str().unwrap_or("?"))
}

// ---- key generation ------------------------------------------------------------------------

struct KeygenResult {
    algorithm: KeyAlgorithm,
    samples_ms: Vec<f64>,
}

/// Figure 3: `PrivateKey::generate` in process, per algorithm, until a count or a time budget.
fn keygen_bench() -> Vec<KeygenResult> {
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

// ---- statistics and the report -------------------------------------------------------------

/// The q-quantile (nearest rank) of `values`.
fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(value: f64) -> String {
    if value.is_nan() {
        "-".into()
    } else if value < 1.0 {
        format!("{value:.3} ms")
    } else if value < 100.0 {
        format!("{value:.1} ms")
    } else {
        format!("{value:.0} ms")
    }
}

fn p50_p95(values: &[f64]) -> String {
    format!(
        "{} / {}",
        ms(quantile(values, 0.5)),
        ms(quantile(values, 0.95))
    )
}

fn mib(bytes: f64) -> String {
    format!("{:.2} MiB", bytes / (1024.0 * 1024.0))
}

fn goal(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**not met**"
    }
}

#[derive(Default)]
struct Report {
    machine: String,
    summary: Vec<(String, String, String)>,
    sections: String,
    notes: Vec<String>,
    binary_size: Option<u64>,
    own_p256: Option<f64>,
    peak_rss: Option<i64>,
    csr_requests: Vec<(String, f64, usize)>,
}

impl Report {
    fn note(&mut self, text: &str) {
        self.notes.push(text.to_owned());
    }

    fn machine(&mut self, settings: &Settings) {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .unwrap_or("unknown")
            .trim()
            .to_owned();
        let nproc = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned();
        let memory = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .nth(1)
            .and_then(|kib| kib.parse::<f64>().ok())
            .map(|kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0))
            .unwrap_or_default();
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let load: String = load
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        let date = k8s_openapi::jiff::Timestamp::now()
            .strftime("%Y-%m-%d %H:%M UTC")
            .to_string();
        self.machine = format!(
            "| Machine | |\n|---|---|\n| CPU | {model} |\n| nproc | {nproc} |\n| memory | {memory} |\n\
             | kernel | Linux {kernel} |\n| load average at start (1/5/15 min) | {load} |\n| date | {date} |\n\
             | binary | `{}` |\n",
            settings.binary.display()
        );
    }

    fn apiserver_version(&mut self, settings: &Settings) {
        let Some(assets) = std::env::var_os("KUBEBUILDER_ASSETS") else {
            return;
        };
        let mut versions = Vec::new();
        for dir in std::iter::once(PathBuf::from(assets)).chain(settings.compare_assets.clone()) {
            let output = Command::new(dir.join("kube-apiserver"))
                .arg("--version")
                .output();
            if let Ok(output) = output {
                versions.push(String::from_utf8_lossy(&output.stdout).trim().to_owned());
            }
        }
        let _ = writeln!(
            self.machine,
            "| control plane | {} (scale scenario only on the second, if any), etcd, kube-controller-manager on 127.0.0.1 (same machine), audit log level Metadata |",
            versions.join(" and ")
        );
    }

    fn binary(&mut self, path: &Path) {
        let bytes = std::fs::read(path).unwrap_or_default();
        let size = bytes.len() as u64;
        self.binary_size = Some(size);
        let elf = elf_facts(&bytes);
        let _ = writeln!(
            self.sections,
            "### Binary\n\n| | |\n|---|---|\n| size | {} ({size} bytes) |\n| linking | {} |\n| symbols | {} |\n",
            mib(size as f64),
            if elf.interpreter { "dynamic (has an ELF interpreter)" } else { "static (no ELF interpreter)" },
            if elf.symtab { "not stripped (.symtab present)" } else { "stripped (no .symtab)" },
        );
    }

    fn keygen(&mut self, results: &[KeygenResult]) {
        let _ = writeln!(
            self.sections,
            "### Key generation (in process, `PrivateKey::generate`, release opt-level)\n\n\
             | Algorithm | keys | median | p95 | max |\n|---|---|---|---|---|"
        );
        for r in results {
            let max = r.samples_ms.iter().cloned().fold(f64::NAN, f64::max);
            let _ = writeln!(
                self.sections,
                "| {} | {} | {} | {} | {} |",
                r.algorithm,
                r.samples_ms.len(),
                ms(quantile(&r.samples_ms, 0.5)),
                ms(quantile(&r.samples_ms, 0.95)),
                ms(max)
            );
        }
        self.sections.push('\n');
    }

    fn overhead(&mut self, series: &[Series]) {
        let _ = writeln!(
            self.sections,
            "### certboot's own time per run (init mode, instant signer; p50 / p95)\n\n\
             | Key | Events | runs | start → CSR create received | start → CSR created | certificate issued → exited | **own time** (1st + 3rd) | spawn → exit (incl. signer) | peak RSS (max of 3 runs) | failed |\n\
             |---|---|---|---|---|---|---|---|---|---|"
        );
        for s in series {
            let column = |i: usize| s.figures.iter().map(|f| f[i]).collect::<Vec<_>>();
            let rss = s.rss_kib.iter().copied().max().unwrap_or(0);
            let own = column(3);
            if s.algorithm == "ecdsa-p256" && s.events {
                self.own_p256 = Some(quantile(&own, 0.5));
            }
            self.peak_rss = Some(self.peak_rss.unwrap_or(0).max(rss));
            let _ = writeln!(
                self.sections,
                "| {} | {} | {} | {} | {} | {} | **{}** | {} | {} | {} |",
                s.algorithm,
                if s.events { "on" } else { "off" },
                s.figures.len(),
                p50_p95(&column(0)),
                p50_p95(&column(1)),
                p50_p95(&column(2)),
                p50_p95(&own),
                p50_p95(&column(4)),
                mib(rss as f64 * 1024.0),
                s.failures
            );
        }
        let floor = peak_rss_kib(
            Path::new("/bin/true"),
            &[],
            &std::env::temp_dir(),
            "certboot-bench-rss-floor",
        );
        let _ = writeln!(
            self.sections,
            "\nPeak RSS is `ru_maxrss` of certboot spawned from a small helper process (the measurement's \
             floor, `/bin/true` through the same helper: {}). The timed runs and the peak-RSS runs are separate.\n",
            floor.map(|kib| mib(kib as f64 * 1024.0)).unwrap_or_else(|| "-".into())
        );
    }

    fn scale(&mut self, results: &[ScaleResult], settings: &Settings) {
        let _ = writeln!(
            self.sections,
            "### Many pods at once: outcome and API requests per pod (counted in the audit log)\n\n\
             | Scenario | Client | Events | pods | succeeded | wall time | per pod p50 / p95 / max | CSR requests per pod (mean, max) | Event requests per pod (mean, max) | all requests per pod (mean, max) | breakdown (mean per pod) | 429s | WARN lines logged | watches closed by the API server |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for r in results {
            let per = |filter: &dyn Fn(&str) -> bool| -> (f64, usize) {
                let mut sums = vec![0usize; r.pods];
                for (class, counts) in &r.requests {
                    if filter(class) {
                        for (i, c) in counts.iter().enumerate() {
                            sums[i] += c;
                        }
                    }
                }
                let mean = sums.iter().sum::<usize>() as f64 / r.pods.max(1) as f64;
                (mean, sums.iter().copied().max().unwrap_or(0))
            };
            let csr = per(&|c| c.contains(" csr"));
            let events = per(&|c| c.ends_with(" events"));
            let all = per(&|_| true);
            if r.client == "certboot" {
                let events = if r.events == Some(true) { "on" } else { "off" };
                self.csr_requests
                    .push((format!("{}, Events {events}", r.label), csr.0, csr.1));
            }
            let breakdown: Vec<String> = r
                .requests
                .iter()
                .map(|(class, counts)| {
                    let mean = counts.iter().sum::<usize>() as f64 / r.pods.max(1) as f64;
                    format!("{class} {mean:.2}")
                })
                .collect();
            let max = r.per_pod_ms.iter().cloned().fold(f64::NAN, f64::max);
            let _ = writeln!(
                self.sections,
                "| {} | {} | {} | {} | {} | {:.1} s | {} / {} / {} | {:.2}, {} | {:.2}, {} | {:.2}, {} | {} | {} | {} | {} |",
                r.label,
                r.client,
                match r.events {
                    Some(true) => "on",
                    Some(false) => "off",
                    None => "-",
                },
                r.pods,
                r.succeeded,
                r.wall.as_secs_f64(),
                ms(quantile(&r.per_pod_ms, 0.5)),
                ms(quantile(&r.per_pod_ms, 0.95)),
                ms(max),
                csr.0,
                csr.1,
                events.0,
                events.1,
                all.0,
                all.1,
                breakdown.join(", "),
                r.throttled,
                r.retries_logged,
                r.watches_closed
                    .map_or_else(|| "-".to_owned(), |n| n.to_string())
            );
        }
        let _ = writeln!(
            self.sections,
            "\nSlow signer: approves at once, issues {} s later; the polling client, certboot with Events and \
             certboot without ran at the same time ({} pods each).\n",
            settings.delay.as_secs(),
            settings.delayed
        );
    }

    fn finish(&mut self) {
        if let Some(own) = self.own_p256 {
            self.summary.push((
                "certboot's own time, ecdsa-p256, p50 (start → CSR sent + issued → exited)".into(),
                ms(own),
                format!("< 20 ms: {}", goal(own < 20.0)),
            ));
        }
        if let Some(rss) = self.peak_rss {
            self.summary.push((
                "peak RSS of one run (max over all runs)".into(),
                mib(rss as f64 * 1024.0),
                format!("< 10 MiB: {}", goal((rss as f64) < 10.0 * 1024.0)),
            ));
        }
        if let Some(size) = self.binary_size {
            self.summary.push((
                "static stripped binary".into(),
                mib(size as f64),
                format!("< 6 MiB: {}", goal((size as f64) < 6.0 * 1024.0 * 1024.0)),
            ));
        }
        for (scenario, mean, max) in &self.csr_requests {
            self.summary.push((
                format!("CSR API requests per pod ({scenario})"),
                format!("{mean:.2} mean, {max} max"),
                format!("≤ 3: {}", goal(*max <= 3)),
            ));
        }
    }

    fn render(&self) -> String {
        let mut out = String::from("## certboot benchmark\n\n");
        if !self.summary.is_empty() {
            out.push_str("| Figure | Result | Goal |\n|---|---|---|\n");
            for (what, result, goal) in &self.summary {
                let _ = writeln!(out, "| {what} | {result} | {goal} |");
            }
            out.push('\n');
        }
        out.push_str(&self.sections);
        out.push_str(&self.machine);
        for note in &self.notes {
            let _ = writeln!(out, "\n{note}");
        }
        out
    }
}

struct ElfFacts {
    interpreter: bool,
    symtab: bool,
}

/// Whether an ELF64 file has a program interpreter (dynamic linking) and a symbol table.
fn elf_facts(bytes: &[u8]) -> ElfFacts {
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4")))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8")) as usize)
    };
    let mut facts = ElfFacts {
        interpreter: false,
        symtab: false,
    };
    if bytes.get(0..4) != Some(b"\x7fELF") {
        return facts;
    }
    let (Some(phoff), Some(phsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return facts;
    };
    facts.interpreter = (0..phnum).any(|i| u32_at(phoff + i * phsize) == Some(3)); // PT_INTERP
    let (Some(shoff), Some(shsize), Some(shnum)) = (u64_at(0x28), u16_at(0x3a), u16_at(0x3c))
    else {
        return facts;
    };
    facts.symtab = (0..shnum).any(|i| u32_at(shoff + i * shsize + 4) == Some(2)); // SHT_SYMTAB
    facts
}
