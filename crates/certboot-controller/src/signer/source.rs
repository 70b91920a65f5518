//! The CA the signer uses now, following the mounted Secret without a restart: the files are
//! re-read (and compared by digest) before each certificate is signed and whenever inotify
//! reports a change in their directory (the kubelet's `..data` swap). A new CA that loads is
//! used from the next signature on and its bundle is published; one that does not load is
//! refused with a warning and the previous CA stays in use. See docs/signing.md (CA rotation).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;
use tracing::{info, warn};

use super::ca::{CaError, CaFiles, SigningCa};
use super::inotify::DirWatch;
use certboot_core::timefmt::unix_now;

/// The CA in use and where it comes from.
pub struct CaSource {
    dir: PathBuf,
    state: Mutex<Loaded>,
    bundle: watch::Sender<String>,
}

struct Loaded {
    digest: [u8; 32],
    ca: Arc<SigningCa>,
}

impl CaSource {
    /// Loads the CA from `dir` (an error here stops the controller: exit 2) and returns the
    /// source with the channel of its trust bundle.
    pub fn load(dir: PathBuf) -> Result<(CaSource, watch::Receiver<String>), CaError> {
        let files = CaFiles::read(&dir)?;
        let ca = SigningCa::from_files(&dir, &files, unix_now())?;
        warn_if_unanchored(&ca, &dir);
        let (bundle, receiver) = watch::channel(ca.trust_bundle().to_string());
        let state = Mutex::new(Loaded {
            digest: files.digest(),
            ca: Arc::new(ca),
        });
        Ok((CaSource { dir, state, bundle }, receiver))
    }

    /// The CA to sign with now: the files are read again and, when they changed, loaded.
    pub fn current(&self) -> Arc<SigningCa> {
        self.refresh();
        self.lock().ca.clone()
    }

    /// Follows changes of the directory until the process stops; without inotify the CA is
    /// still re-read before each signature, but a new bundle waits for the next CSR.
    pub async fn follow(self: Arc<Self>) {
        let mut watch = match DirWatch::new(&self.dir) {
            Ok(watch) => watch,
            Err(e) => {
                warn!(
                    "cannot watch {} for CA changes ({e}): a changed CA is picked up when the next CSR is signed, and its bundle published then; restart the controller to publish it at once",
                    self.dir.display()
                );
                return std::future::pending().await;
            }
        };
        loop {
            if let Err(e) = watch.changed().await {
                warn!(
                    "watching {} for CA changes failed ({e}); a changed CA is picked up when the next CSR is signed",
                    self.dir.display()
                );
                return std::future::pending().await;
            }
            self.refresh();
        }
    }

    /// Loads the files when their digest changed; keeps the previous CA when they do not load.
    fn refresh(&self) {
        let files = match CaFiles::read(&self.dir) {
            Ok(files) => files,
            Err(e) => {
                warn!("{e}; still signing with the CA loaded before");
                return;
            }
        };
        let digest = files.digest();
        let mut state = self.lock();
        if state.digest == digest {
            return;
        }
        match SigningCa::from_files(&self.dir, &files, unix_now()) {
            Ok(ca) => {
                warn_if_unanchored(&ca, &self.dir);
                info!(
                    "loaded a changed CA from {}; signing with it from now on",
                    self.dir.display()
                );
                let bundle = ca.trust_bundle().to_string();
                *state = Loaded {
                    digest,
                    ca: Arc::new(ca),
                };
                drop(state);
                self.bundle.send_if_modified(|current| {
                    let changed = *current != bundle;
                    *current = bundle;
                    changed
                });
            }
            Err(e) => {
                // Remembered, so a broken Secret is reported once per change, not per CSR.
                state.digest = digest;
                warn!("the changed CA is refused: {e}; still signing with the CA loaded before. Fix the Secret");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Loaded> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn warn_if_unanchored(ca: &SigningCa, dir: &std::path::Path) {
    if !ca.bundle_trusts_chain() {
        warn!(
            "the trust bundle ({}/ca.crt) holds neither the signing CA's root nor its issuer: pods will not trust the certificates signed now. Add the new root to ca.crt (keep the old one during the overlap); see README, Signing: CA rotation",
            dir.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

    fn root(cn: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    fn write(dir: &std::path::Path, (cert, key): &(String, String), bundle: &str) {
        std::fs::write(dir.join("tls.crt"), cert).unwrap();
        std::fs::write(dir.join("tls.key"), key).unwrap();
        std::fs::write(dir.join("ca.crt"), bundle).unwrap();
    }

    #[test]
    fn a_changed_ca_is_used_and_its_bundle_published_and_a_broken_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (root("one"), root("two"));
        write(dir.path(), &one, &one.0);
        let (source, mut bundle) = CaSource::load(dir.path().to_path_buf()).unwrap();
        assert_eq!(*bundle.borrow_and_update(), one.0);
        assert!(!bundle.has_changed().unwrap());

        // Overlap: old and new roots in ca.crt, still signing with the old CA.
        let overlap = format!("{}{}", one.0, two.0);
        write(dir.path(), &one, &overlap);
        let ca = source.current();
        assert_eq!(ca.trust_bundle(), overlap);
        assert_eq!(*bundle.borrow_and_update(), overlap);

        // Switch: the new CA signs, the bundle is unchanged (no publish).
        write(dir.path(), &two, &overlap);
        let ca = source.current();
        assert!(ca.intermediates_pem().is_empty());
        assert!(!bundle.has_changed().unwrap());
        assert!(ca.bundle_trusts_chain());

        // A key that is not the certificate's: refused, the CA before stays.
        write(dir.path(), &(one.0.clone(), two.1.clone()), &overlap);
        let still = source.current();
        assert!(Arc::ptr_eq(&ca, &still));
    }

    #[test]
    fn a_bundle_without_the_signing_root_is_flagged() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (root("one"), root("two"));
        write(dir.path(), &two, &one.0);
        let (source, _) = CaSource::load(dir.path().to_path_buf()).unwrap();
        assert!(!source.current().bundle_trusts_chain());
    }

    #[test]
    fn an_unreadable_ca_crt_keeps_the_previous_bundle_instead_of_publishing_a_smaller_one() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (root("one"), root("two"));
        let overlap = format!("{}{}", one.0, two.0);
        write(dir.path(), &one, &overlap);
        let (source, mut bundle) = CaSource::load(dir.path().to_path_buf()).unwrap();
        assert_eq!(*bundle.borrow_and_update(), overlap);

        // ca.crt cannot be read (here: a directory in its place): not "absent", an error.
        std::fs::remove_file(dir.path().join("ca.crt")).unwrap();
        std::fs::create_dir(dir.path().join("ca.crt")).unwrap();
        let _ = source.current();
        assert!(
            !bundle.has_changed().unwrap(),
            "the two-root bundle stays published"
        );
        assert!(CaFiles::read(dir.path()).is_err());

        // Really absent: the bundle is the last certificate of tls.crt.
        std::fs::remove_dir(dir.path().join("ca.crt")).unwrap();
        assert!(CaFiles::read(dir.path()).is_ok());
    }

    #[test]
    fn the_three_files_are_read_from_one_generation_of_a_mounted_secret() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (root("one"), root("two"));
        let first = dir.path().join("..2026_11_24_first");
        std::fs::create_dir(&first).unwrap();
        write(&first, &one, &one.0);
        std::os::unix::fs::symlink("..2026_11_24_first", dir.path().join("..data")).unwrap();
        for name in ["tls.crt", "tls.key", "ca.crt"] {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.path().join(name)).unwrap();
        }
        let files = CaFiles::read(dir.path()).unwrap();
        write(&first, &two, &two.0);
        let again = CaFiles::read(dir.path()).unwrap();
        assert_ne!(files.digest(), again.digest());
        std::fs::remove_dir_all(&first).unwrap();
        assert!(
            CaFiles::read(dir.path()).is_err(),
            "a removed generation is a read error"
        );
    }
}
