//! The control-plane figures: sequential runs per key algorithm (own time, peak RSS), many pods
//! at once, a slow signer, and a naive polling client for comparison.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use kube::api::{Api, ObjectMeta, PostParams};

use crate::audit::Audit;
use crate::harness::audit::{class, micros};
use crate::harness::{self, ControlPlane, ControlPlaneOptions, ADMIN_USER};
use crate::settings::Settings;
use crate::spawn::{peak_rss_kib, spawn_certboot, Exit, Spawned};
use crate::support;
use crate::{DELAYED_SIGNER, INSTANT_SIGNER, NS, RSS_RUNS, WARMUP_RUNS};

pub(crate) struct Bench<'a> {
    pub(crate) cp: &'a ControlPlane,
    pub(crate) binary: &'a Path,
    pub(crate) work: &'a Path,
    pub(crate) settings: &'a Settings,
}

/// One measured init-mode run.
pub(crate) struct Run {
    pub(crate) csr: String,
    pub(crate) spawned_us: i64,
    pub(crate) exit: Exit,
}

/// One overhead series: an algorithm, with or without Events.
pub(crate) struct Series {
    pub(crate) algorithm: &'static str,
    pub(crate) events: bool,
    pub(crate) runs: Vec<Run>,
    /// Peak RSS (KiB) of the separate [`RSS_RUNS`] runs through [`rss_helper`].
    pub(crate) rss_kib: Vec<i64>,
    /// (start → create received, start → created, issued → exit, own, total), ms, per run.
    pub(crate) figures: Vec<[f64; 5]>,
    pub(crate) failures: usize,
}

/// N pods at once (or a delayed batch): outcome and API requests per pod.
pub(crate) struct ScaleResult {
    pub(crate) label: String,
    pub(crate) client: &'static str,
    pub(crate) pods: usize,
    pub(crate) events: Option<bool>,
    pub(crate) succeeded: usize,
    pub(crate) wall: Duration,
    pub(crate) per_pod_ms: Vec<f64>,
    /// class ("create csr") → count per pod (one entry per pod).
    pub(crate) requests: BTreeMap<String, Vec<usize>>,
    pub(crate) throttled: usize,
    pub(crate) retries_logged: usize,
    /// CSR watchers the API server's watch cache closed during the batch, from its log (`None`
    /// where batches ran at the same time and the count cannot be attributed).
    pub(crate) watches_closed: Option<usize>,
}

impl Bench<'_> {
    /// The environment of one run of the overhead series (instant signer).
    pub(crate) fn overhead_certboot(
        &self,
        kubeconfig: &Path,
        pod: &str,
        algorithm: &str,
        events: bool,
    ) -> support::Certboot {
        self.certboot(
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

    /// One certboot init container: its pod identity, service account and output directory.
    pub(crate) fn certboot(
        &self,
        kubeconfig: &Path,
        namespace: &str,
        pod: &str,
        extra: &[(&str, &str)],
    ) -> support::Certboot {
        let cert_dir = self.work.join("certs").join(namespace).join(pod);
        let mut certboot = support::Certboot::new(kubeconfig, &cert_dir, namespace, pod)
            .env("POD_UID", &support::fake_uid(&format!("{namespace}/{pod}")))
            .env("CERTBOOT_DNS_NAMES", &format!("{pod}.{namespace}.svc"))
            // certboot's own default log level, as shipped, unless CERTBOOT_BENCH_LOG says otherwise.
            .without("CERTBOOT_LOG");
        if let Ok(filter) = std::env::var("CERTBOOT_BENCH_LOG") {
            certboot = certboot.env("CERTBOOT_LOG", &filter);
        }
        for (k, v) in extra {
            certboot = certboot.env(k, v);
        }
        certboot
    }

    pub(crate) fn logs(&self, series: &str) -> PathBuf {
        let dir = self.work.join("logs").join(series);
        std::fs::create_dir_all(&dir).expect("log dir");
        dir
    }

    /// Figure 1 + 2: sequential init runs per key algorithm against the instant signer.
    pub(crate) async fn overhead_series(&self) -> Vec<Series> {
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
                let certboot = self.overhead_certboot(&kubeconfig, &pod, algorithm, events);
                let spawned = spawn_certboot(self.binary, &certboot, &logs, &pod);
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
                        csr: certboot.csr_name(),
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
                let certboot = self.overhead_certboot(&kubeconfig, &pod, algorithm, events);
                let (binary, env) = (self.binary, certboot.vars());
                match tokio::task::block_in_place(|| peak_rss_kib(binary, env, &logs, &pod)) {
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
    pub(crate) async fn identities(&self, namespace: &str, n: usize) -> Vec<(String, String)> {
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
    pub(crate) async fn certboot_scale(&self, n: usize, events: bool) -> ScaleResult {
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
    pub(crate) fn watches_closed(&self) -> usize {
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

    pub(crate) async fn certboot_batch(
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
                let certboot = self.certboot(
                    kubeconfig,
                    namespace,
                    account,
                    &[
                        ("CERTBOOT_SIGNER_NAME", signer),
                        ("CERTBOOT_EVENTS", if events { "true" } else { "false" }),
                        ("CERTBOOT_TIMEOUT", "540s"),
                    ],
                );
                let spawned = spawn_certboot(self.binary, &certboot, &logs, account);
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
    pub(crate) async fn count_requests(
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
    pub(crate) async fn delayed_series(&self) -> Vec<ScaleResult> {
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
    pub(crate) async fn poll_batch(
        &self,
        identities: &[(String, String)],
        label: String,
    ) -> ScaleResult {
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
pub(crate) async fn naive_poll(
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

/// The scale scenario (Events off, then on) on another control plane: the binaries in `assets`.
pub(crate) async fn compare_scale(
    assets: &Path,
    binary: &Path,
    settings: &Settings,
) -> Vec<ScaleResult> {
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

/// certboot's ClusterRole (from `manifests/rbac.yaml`) and Events rights for every service
/// account, so that each pod of the scale series can run as its own identity.
pub(crate) async fn setup_rbac(cp: &ControlPlane) {
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
                api_group: Some("rbac.authorization.k8s.io".into()),
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

/// Whether certboot left a matching, valid pair in `dir`.
pub(crate) fn pair_ok(dir: &Path) -> bool {
    let (Ok(cert), Ok(key)) = (
        std::fs::read(dir.join("cert.pem")),
        std::fs::read_to_string(dir.join("key.pem")),
    ) else {
        return false;
    };
    certboot_core::pki::verify::verify_pair(&cert, &key, certboot_core::timefmt::unix_now()).is_ok()
}
