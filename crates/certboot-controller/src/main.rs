//! `certboot-controller`: approves pods' CSRs (and, configured, signs them) for a whole cluster.
//! Reads like docs/approver.md:
//!
//! 1. read the settings and the policy (a bad one exits 2 naming the variable or field);
//! 2. connect, serve health and metrics, wait for the Lease;
//! 3. approve or deny each pending CSR of the policy's signers until SIGTERM.

use std::path::Path;
use std::process::ExitCode;

use certboot_controller::approver::policy::Policy;
use certboot_controller::run::{run, ControllerError};
use certboot_controller::settings::Settings;
use certboot_core::identity::SERVICE_ACCOUNT_NAMESPACE_FILE;
use certboot_core::{exit_code, logging, signals, version};
use tracing::error;

const HELP: &str =
    "certboot-controller: approves Kubernetes CSRs that provably come from the pod that filed them.

Usage: certboot-controller [--help | --version]

Configured through the environment (see the README, section Approving):
  CERTBOOT_POLICY           policy file (default /etc/certboot/policy/policy.json)
  POD_NAME, POD_NAMESPACE   this replica's identity and the Lease's namespace (Downward API)
  CERTBOOT_LEADER_ELECTION  true (default) or false
  CERTBOOT_LEASE_NAME       default certboot-controller
  CERTBOOT_LEASE_DURATION   default 8s
  CERTBOOT_HEALTH_ADDR      /healthz, /readyz, /metrics (default 0.0.0.0:9402; off to disable)
  CERTBOOT_LOG_FORMAT       text (default) or json; CERTBOOT_LOG: log filter

The signer (on when CERTBOOT_SIGNER_NAMES is set; README, section Signing):
  CERTBOOT_SIGNER_NAMES         signers to sign for, comma-separated (e.g. certboot.io/serving)
  CERTBOOT_SIGNER_CA_DIR        the CA's kubernetes.io/tls Secret (default /etc/certboot/ca)
  CERTBOOT_SIGNER_DURATION      lifetime when a CSR asks for none (default 30d)
  CERTBOOT_SIGNER_MAX_DURATION  the most any certificate gets (default 30d)
  CERTBOOT_TRUST_NAMESPACES     namespaces that get ConfigMap certboot-ca (key ca.crt), kept in
                                sync; also ClusterTrustBundle <signer, ':' for '/'>:bundle where served
The CA Secret is followed without a restart (CA rotation: README, section Signing).

Exit codes: 0 stopped by SIGTERM; 1 API failure or lost leadership; 2 bad settings, policy or CA
(or a policy maxExpirationSeconds this API server cannot show the approver: before 1.22).
";

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("--help" | "-h" | "help") => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Some("--version" | "-V") => {
            print!("{}", version::version("certboot-controller"));
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("certboot-controller: unknown argument {other:?}\nRun `certboot-controller --help` for usage.");
            return ExitCode::from(exit_code::CONFIG);
        }
    }
    match start() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if tracing::dispatcher::has_been_set() {
                error!(exit_code = e.exit_code(), "{e}");
            } else {
                eprintln!("certboot-controller: {e}");
            }
            e.exit()
        }
    }
}

fn start() -> Result<(), ControllerError> {
    let settings = Settings::from_env(std::env::vars(), Path::new(SERVICE_ACCOUNT_NAMESPACE_FILE))?;
    let policy = Policy::load(&settings.policy)?;
    logging::init(settings.log_format);
    tracing::info!(
        "certboot-controller {} starting: policy {} serves signers {:?}",
        env!("CARGO_PKG_VERSION"),
        settings.policy.display(),
        policy.signer_names()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ControllerError::Runtime)?;
    runtime.block_on(run(settings, policy, signals::shutdown()))
}
