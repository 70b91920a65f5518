//! Statistics and the markdown report.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::keygen::KeygenResult;
use crate::scenarios::{ScaleResult, Series};
use crate::settings::Settings;
use crate::spawn::peak_rss_kib;
use crate::support;

/// The q-quantile (nearest rank) of `values`.
pub(crate) fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub(crate) fn ms(value: f64) -> String {
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

pub(crate) fn p50_p95(values: &[f64]) -> String {
    format!(
        "{} / {}",
        ms(quantile(values, 0.5)),
        ms(quantile(values, 0.95))
    )
}

pub(crate) fn mib(bytes: f64) -> String {
    format!("{:.2} MiB", bytes / (1024.0 * 1024.0))
}

pub(crate) fn goal(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**not met**"
    }
}

#[derive(Default)]
pub(crate) struct Report {
    pub(crate) machine: String,
    pub(crate) summary: Vec<(String, String, String)>,
    pub(crate) sections: String,
    pub(crate) notes: Vec<String>,
    pub(crate) binary_size: Option<u64>,
    pub(crate) own_p256: Option<f64>,
    pub(crate) peak_rss: Option<i64>,
    pub(crate) csr_requests: Vec<(String, f64, usize)>,
}

impl Report {
    pub(crate) fn note(&mut self, text: &str) {
        self.notes.push(text.to_owned());
    }

    pub(crate) fn machine(&mut self, settings: &Settings) {
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

    pub(crate) fn apiserver_version(&mut self, settings: &Settings) {
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

    pub(crate) fn binary(&mut self, path: &Path) {
        let bytes = std::fs::read(path).unwrap_or_default();
        let size = bytes.len() as u64;
        self.binary_size = Some(size);
        let (linking, symbols) = match support::elf::read(&bytes) {
            Ok(elf) => (
                if elf.interpreter {
                    "dynamic (has an ELF interpreter)"
                } else {
                    "static (no ELF interpreter)"
                },
                if elf.symtab {
                    "not stripped (.symtab present)"
                } else {
                    "stripped (no .symtab)"
                },
            ),
            Err(_) => ("(not an ELF file)", "(not an ELF file)"),
        };
        let _ = writeln!(
            self.sections,
            "### Binary\n\n| | |\n|---|---|\n| size | {} ({size} bytes) |\n| linking | {linking} |\n| symbols | {symbols} |\n",
            mib(size as f64),
        );
    }

    pub(crate) fn keygen(&mut self, results: &[KeygenResult]) {
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

    pub(crate) fn overhead(&mut self, series: &[Series]) {
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

    pub(crate) fn scale(&mut self, results: &[ScaleResult], settings: &Settings) {
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

    pub(crate) fn finish(&mut self) {
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

    pub(crate) fn render(&self) -> String {
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
