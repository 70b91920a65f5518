//! The `helm` binaries (Helm 4: env `CERTBOOT_HELM`; Helm 3: `CERTBOOT_HELM3`; else each built
//! once by `scripts/helm.sh [3]`) and the chart rendered with them, as JSON objects.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

/// The repository root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The chart directory.
pub fn chart_dir() -> PathBuf {
    repo().join("charts/certboot")
}

/// The namespace the chart is rendered into (the kustomize base's).
pub const RELEASE_NAMESPACE: &str = "certboot-system";

/// Helm 4: `CERTBOOT_HELM`, else `scripts/helm.sh`'s (built on first use). `None` after a loud
/// SKIPPED line when neither works outside CI; a panic under `CI=true`.
pub fn helm() -> Option<Helm> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    found(
        FOUND.get_or_init(|| find_helm("CERTBOOT_HELM", "4")),
        "CERTBOOT_HELM",
        "",
    )
}

/// Helm 3, the same way: `CERTBOOT_HELM3`, else `scripts/helm.sh 3`'s.
pub fn helm3() -> Option<Helm> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    found(
        FOUND.get_or_init(|| find_helm("CERTBOOT_HELM3", "3")),
        "CERTBOOT_HELM3",
        " 3",
    )
}

fn found(found: &Result<PathBuf, String>, var: &str, arg: &str) -> Option<Helm> {
    match found {
        Ok(path) => Some(Helm { path: path.clone() }),
        Err(why) => {
            let hint =
                format!("export {var}=\"$(scripts/helm.sh{arg})\"; it builds helm once with Go");
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but no helm: {why}. CI must run the chart tests ({hint})");
            }
            eprintln!("SKIPPED chart tests: no helm ({hint}): {why}");
            None
        }
    }
}

fn find_helm(var: &str, major: &str) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{var}={} is not a file", path.display()))
        };
    }
    let script = repo().join("scripts/helm.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(major)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} {major} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} printed {}, not a file",
            script.display(),
            path.display()
        ))
    }
}

/// A helm binary.
pub struct Helm {
    path: PathBuf,
}

/// How to render the chart.
#[derive(Clone, Debug, Default)]
pub struct Render {
    /// `--values` files.
    pub values: Vec<PathBuf>,
    /// `--set name=value` pairs.
    pub set: Vec<String>,
    /// `--set-file name=path` pairs.
    pub set_file: Vec<String>,
    /// `--kube-version` (e.g. `1.20.2`); helm's default otherwise.
    pub kube_version: Option<String>,
    /// `--api-versions`.
    pub api_versions: Vec<String>,
}

impl Render {
    pub fn values(mut self, path: PathBuf) -> Self {
        self.values.push(path);
        self
    }

    pub fn set(mut self, pair: &str) -> Self {
        self.set.push(pair.to_owned());
        self
    }

    pub fn set_file(mut self, pair: &str) -> Self {
        self.set_file.push(pair.to_owned());
        self
    }

    pub fn kube_version(mut self, version: &str) -> Self {
        self.kube_version = Some(version.to_owned());
        self
    }

    pub fn api_version(mut self, version: &str) -> Self {
        self.api_versions.push(version.to_owned());
        self
    }
}

impl Helm {
    /// Runs helm with `args` (an isolated HOME-less configuration: no repositories, no plugins).
    pub fn run(&self, args: &[&str]) -> Output {
        let scratch = std::env::temp_dir().join("certboot-chart-tests-helm");
        Command::new(&self.path)
            .args(args)
            .env("HELM_CACHE_HOME", scratch.join("cache"))
            .env("HELM_CONFIG_HOME", scratch.join("config"))
            .env("HELM_DATA_HOME", scratch.join("data"))
            .env_remove("KUBECONFIG")
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.path.display()))
    }

    /// Runs helm with `args` and returns its stdout; panics with the command, stdout and stderr
    /// when it fails.
    pub fn run_ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "helm {} failed ({}):\n{stdout}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// `helm template certboot charts/certboot -n certboot-system ...`: the output, or helm's
    /// stderr when it refused.
    pub fn template(&self, render: &Render) -> Result<String, String> {
        let chart = chart_dir();
        let mut args: Vec<String> = vec![
            "template".into(),
            "certboot".into(),
            chart.display().to_string(),
            "--namespace".into(),
            RELEASE_NAMESPACE.into(),
        ];
        for v in &render.values {
            args.push("--values".into());
            args.push(v.display().to_string());
        }
        for s in &render.set {
            args.push("--set".into());
            args.push(s.clone());
        }
        for s in &render.set_file {
            args.push("--set-file".into());
            args.push(s.clone());
        }
        if let Some(v) = &render.kube_version {
            args.push("--kube-version".into());
            args.push(v.clone());
        }
        for v in &render.api_versions {
            args.push("--api-versions".into());
            args.push(v.clone());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.run(&args);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The rendered objects; panics with helm's message when it refused.
    pub fn render(&self, render: &Render) -> Vec<Value> {
        let text = self
            .template(render)
            .unwrap_or_else(|e| panic!("helm template {render:?} failed:\n{e}"));
        documents(&text, "helm template")
    }
}

/// The non-empty documents of a YAML stream, as JSON.
pub fn documents(text: &str, what: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| {
            let yaml = serde_yaml::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("parse YAML of {what}: {e}"));
            serde_json::to_value(yaml).unwrap_or_else(|e| panic!("YAML to JSON of {what}: {e}"))
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The non-empty documents of a YAML file, as JSON.
pub fn file_documents(path: &Path) -> Vec<Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    documents(&text, &path.display().to_string())
}

/// `kind namespace/name` of an object, for messages and lookups.
pub fn key(object: &Value) -> String {
    format!(
        "{} {}/{}",
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["namespace"].as_str().unwrap_or(""),
        object["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// The object of `kind` named `name` (any namespace).
pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}
