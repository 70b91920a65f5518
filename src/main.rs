//! certboot's entry point. Reads top to bottom like the README's "How it works":
//!
//! 1. read the configuration (a bad one exits 2 before any API call or file write);
//! 2. if the output directory already holds a matching pair that is not yet due for renewal, stop
//!    there (a restarted init container files no second CSR);
//! 3. generate a key, file a CSR, wait for it on a watch, verify what the signer returned, and
//!    write cert and key atomically;
//! 4. in sidecar mode, keep renewing until SIGTERM.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use certboot::cli::{self, Command};
use certboot::config::{Config, Mode, SERVICE_ACCOUNT_NAMESPACE_FILE};
use certboot::error::{code, Error};
use certboot::events::Events;
use certboot::obtain::{Attempt, Certifier};
use certboot::renew::metrics::Metrics;
use certboot::renew::Renewer;
use certboot::store::Store;
use certboot::{check, dryrun, help, termination};
use certboot_core::logging;
use certboot_core::pki::verify::Verified;
use certboot_core::timefmt::{human, rfc3339, unix_now};
use tracing::{error, info, warn};

fn main() -> ExitCode {
    // Before any key exists: no core file, no ptrace or /proc/<pid>/mem by the app's processes.
    let hardened = certboot::hardening::forbid_core_dumps();
    let command = match cli::parse(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(problem) => {
            eprintln!("certboot: {problem}\nRun `certboot --help` for usage.");
            return ExitCode::from(code::CONFIG);
        }
    };
    match command {
        Command::Help => print_and_exit(help::HELP),
        Command::Version => print_and_exit(&certboot_core::version::version("certboot")),
        Command::DryRun => dry_run(),
        Command::Check { min_valid } => check_pair(min_valid),
        Command::Run => run(hardened),
    }
}

fn print_and_exit(text: &str) -> ExitCode {
    print!("{text}");
    ExitCode::SUCCESS
}

/// `certboot` with no arguments: obtain the certificate, and renew it in sidecar mode.
fn run(hardened: std::io::Result<()>) -> ExitCode {
    // 1. Configuration, validated before anything else happens.
    let config = match Config::from_env(std::env::vars(), Path::new(SERVICE_ACCOUNT_NAMESPACE_FILE))
    {
        Ok(config) => config,
        Err(e) => return fail(&Error::from(e), termination_log_from_env().as_deref()),
    };
    logging::init(config.log_format);
    if let Err(e) = hardened {
        warn!("could not forbid core dumps (PR_SET_DUMPABLE 0, RLIMIT_CORE 0): {e}; a crash could write the key to a core file");
    }
    for warning in &config.warnings {
        warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(source) => {
            return fail(
                &Error::Startup {
                    what: "cannot start the async runtime",
                    source,
                },
                config.termination_log.as_deref(),
            )
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            result = provide_certificate(&config) => result.map(|()| Stopped::Done),
            signal = certboot_core::signals::shutdown() => Ok(Stopped::Signal(signal)),
        }
    });
    match outcome {
        Ok(Stopped::Done) => ExitCode::SUCCESS,
        Ok(Stopped::Signal(name)) if config.mode == Mode::Sidecar => {
            info!("received {name}; stopping (the certificate on disk stays in place)");
            ExitCode::SUCCESS
        }
        Ok(Stopped::Signal(name)) => {
            fail(&Error::Interrupted(name), config.termination_log.as_deref())
        }
        Err(e) => fail(&e, config.termination_log.as_deref()),
    }
}

enum Stopped {
    Done,
    Signal(&'static str),
}

/// Steps 2-4: reuse a fresh pair, or obtain one (within CERTBOOT_TIMEOUT); then renew in
/// sidecar mode.
async fn provide_certificate(config: &Config) -> Result<(), Error> {
    let store = Store::new(&config.output);
    store.clean_leftovers();
    let ca_bundle = config.output.read_ca_bundle()?;

    // 2. A pair from an earlier run of this pod that is not yet due for renewal is kept.
    let existing = check::reusable_pair(&store, config, ca_bundle.as_deref());
    if let (Some(cert), Mode::Init) = (&existing, config.mode) {
        info!(
            "{} already holds a valid pair (serial {}, valid until {}); nothing to do",
            config.output.dir.display(),
            cert.serial,
            rfc3339(cert.not_after)
        );
        return Ok(());
    }

    // 3. Key → CSR → wait → verify → write, under the overall deadline.
    let client = certboot_core::api::client().await?;
    let events = if config.events {
        Events::new(client.clone(), &config.pod)
    } else {
        Events::disabled()
    };
    let certifier = Certifier::new(client, config, &events);
    let result = obtain_first(&certifier, config, &store, ca_bundle.as_deref(), existing).await;
    events.flush(Duration::from_secs(2)).await;
    let (current, received_at) = result?;

    // 4. Sidecar: renew before expiry, until SIGTERM.
    if config.mode == Mode::Sidecar {
        // /healthz: the certificate is valid and the pair on disk is still the trusted one.
        let metrics =
            Metrics::new().with_disk_check(std::sync::Arc::new(check::disk_check(config)));
        if let Some(addr) = config.renew.metrics_addr {
            tokio::spawn(metrics.clone().serve(addr));
        }
        let renewer = Renewer {
            certifier: &certifier,
            config,
            store: &store,
            events: &events,
            metrics: &metrics,
        };
        renewer.run(current, received_at).await;
    }
    Ok(())
}

/// The first certificate (and when it was received): the pair already on disk (sidecar
/// restarts), or a new one.
async fn obtain_first(
    certifier: &Certifier<'_>,
    config: &Config,
    store: &Store,
    ca_bundle: Option<&[u8]>,
    existing: Option<Verified>,
) -> Result<(Verified, i64), Error> {
    if let Some(cert) = existing {
        let received_at = cert.not_before;
        return Ok((cert, received_at));
    }
    let issued = certifier.obtain(Attempt::Initial, ca_bundle).await?;
    certifier.store(store, &issued, ca_bundle)?;
    if config.renew.delete_csr {
        certifier.delete_csr(&issued).await;
    }
    Ok((issued.cert, unix_now()))
}

/// Logs the error, records it for `kubectl describe pod`, and returns its exit code.
fn fail(err: &Error, termination_log: Option<&Path>) -> ExitCode {
    let message = err.to_string();
    if tracing::dispatcher::has_been_set() {
        error!(exit_code = err.exit_code(), "{message}");
    } else {
        eprintln!("certboot: {message}");
    }
    termination::write(termination_log, &message);
    err.exit()
}

/// The termination-log path when the configuration itself could not be parsed.
fn termination_log_from_env() -> Option<std::path::PathBuf> {
    certboot::config::parse_termination_log(
        std::env::var("CERTBOOT_TERMINATION_LOG").ok().as_deref(),
    )
}

/// `certboot --dry-run`.
fn dry_run() -> ExitCode {
    let config =
        match Config::for_dry_run(std::env::vars(), Path::new(SERVICE_ACCOUNT_NAMESPACE_FILE)) {
            Ok(config) => config,
            Err(e) => return fail(&Error::from(e), None),
        };
    match dryrun::report(&config) {
        Ok(text) => print_and_exit(&text),
        Err(e) => fail(&e, None),
    }
}

/// `certboot check [--min-valid DURATION]`.
/// It reads the whole configuration, as the certboot container has it: the pair is trusted only
/// for the configured identity, signer and pod.
fn check_pair(min_valid: Duration) -> ExitCode {
    let config = match Config::from_env(std::env::vars(), Path::new(SERVICE_ACCOUNT_NAMESPACE_FILE))
    {
        Ok(config) => config,
        Err(e) => return fail(&Error::from(e), None),
    };
    match check::check(&config, min_valid) {
        Ok(cert) => {
            let left = Duration::from_secs((cert.not_after - unix_now()).max(0) as u64);
            println!(
                "ok: {} matches its key and this pod's configuration, serial {}, valid for {} more",
                config.output.dir.display(),
                cert.serial,
                human(left)
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e, None),
    }
}
