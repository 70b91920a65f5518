//! Writing the certificate and key so that readers only ever see a complete, matching pair.
//!
//! The layout is the one Kubernetes' AtomicWriter uses for projected volumes:
//!
//! ```text
//! /certs/..1763890200123456789/cert.pem   one directory per generation, files fsynced
//! /certs/..1763890200123456789/key.pem    (mode 0600 unless CERTBOOT_KEY_MODE says otherwise)
//! /certs/..data -> ..1763890200123456789   the single commit point, swapped with rename(2)
//! /certs/cert.pem -> ..data/cert.pem       stable names the app opens
//! /certs/key.pem  -> ..data/key.pem
//! ```
//!
//! A new generation is written and fsynced in full before `..data` is renamed over the old link,
//! so a crash (even `kill -9`) at any point leaves either the old pair or the new pair, never a mix
//! or a partial file. The previous generation is kept (a reader that resolved `..data` just before
//! a swap can still open its files); older ones and leftovers of interrupted writes are removed.
//!
//! The app container can write to the same directory (often as the same uid), so certboot never
//! trusts a name in it: every step goes through directory descriptors (`dirfd.rs`), and reading
//! the pair back refuses anything certboot did not put there (see [`Store::read_pair`]).
//!
//! Here: the layout (names, modes), the types, and reading the pair back; `write.rs`: the atomic
//! writer; `dirfd.rs`: the descriptor-relative system calls (through `rustix`);
//! `error.rs`: [`StoreError`] and its hints.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use zeroize::Zeroizing;

use crate::config::OutputConfig;

mod dirfd;
mod error;
#[cfg(test)]
mod hostile_tests;
pub mod origin;
mod write;

pub use dirfd::MAX_READ;
use dirfd::{Dir, Refusal};
use error::io_err;
pub use error::StoreError;

const DATA_LINK: &str = "..data";
const DATA_TMP_LINK: &str = "..data_tmp";
const CERT_MODE: u32 = 0o644;
const CA_MODE: u32 = 0o644;
const ORIGIN_MODE: u32 = 0o644;
const GENERATION_DIR_MODE: u32 = 0o755;

/// What to write: the verified chain, the key, optionally a CA bundle, and the record of where
/// the pair came from ([`origin::Origin`], as JSON).
pub struct Bundle<'a> {
    pub cert_pem: &'a str,
    pub key_pem: &'a str,
    pub ca_pem: Option<&'a [u8]>,
    pub origin: Option<&'a str>,
}

/// A pair read back from disk, with its record when there is one. The key text is zeroized on
/// drop.
pub struct StoredPair {
    pub cert_pem: Vec<u8>,
    pub key_pem: Zeroizing<String>,
    pub origin: Option<Vec<u8>>,
}

/// The output directory and its file names.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    cert_file: String,
    key_file: String,
    ca_file: String,
    key_mode: u32,
}

impl Store {
    /// A store for the configured output directory.
    pub fn new(config: &OutputConfig) -> Store {
        Store {
            dir: config.dir.clone(),
            cert_file: config.cert_file.clone(),
            key_file: config.key_file.clone(),
            ca_file: config.ca_file.clone(),
            key_mode: config.key_mode,
        }
    }

    /// The output directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path the app reads the certificate from.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join(&self.cert_file)
    }

    /// The path the app reads the key from.
    pub fn key_path(&self) -> PathBuf {
        self.dir.join(&self.key_file)
    }

    /// Reads the current pair; `Ok(None)` when there is none (no directory, no `..data`, or a
    /// stable name missing).
    ///
    /// Nothing is followed by path: `..data` must name a generation directory in the output
    /// directory, `cert.pem` and `key.pem` must be certboot's symlinks `..data/<name>`, and both
    /// files are read from that one generation through its descriptor, as regular files of at most
    /// 1 MiB ([`dirfd::MAX_READ`]). A symlink pointing elsewhere, a FIFO, a device or an oversized
    /// file is refused with an error (never followed, never blocked on).
    pub fn read_pair(&self) -> Result<Option<StoredPair>, StoreError> {
        let dir = match self.open_output_dir() {
            Ok(dir) => dir,
            Err(e) if e.source.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        for name in [&self.cert_file, &self.key_file] {
            if !self.check_stable_link(&dir, name)? {
                return Ok(None);
            }
        }
        let Some(generation) = self.read_generation_link(&dir)? else {
            return Ok(None);
        };
        let gen_path = self.dir.join(&generation);
        let gen = match dir.open_dir(&generation) {
            Ok(gen) => gen,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("open directory", &gen_path)(e)),
        };
        let read = |name: &str| match gen.read_file(name) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &gen_path.join(name))(e)),
        };
        let Some(cert) = read(&self.cert_file)? else {
            return Ok(None);
        };
        let Some(key) = read(&self.key_file)? else {
            return Ok(None);
        };
        let origin = read(origin::ORIGIN_FILE)?;
        Ok(Some(StoredPair {
            cert_pem: cert.to_vec(),
            key_pem: Zeroizing::new(String::from_utf8_lossy(&key).into_owned()),
            origin: origin.map(|o| o.to_vec()),
        }))
    }

    /// The generation `..data` names: `Ok(None)` when there is no `..data`; an error when it is
    /// not a symlink to a plain `..<name>` in the directory.
    fn read_generation_link(&self, dir: &Dir) -> Result<Option<String>, StoreError> {
        let path = self.dir.join(DATA_LINK);
        match dir.read_link(DATA_LINK) {
            Ok(target) => match valid_generation(&target) {
                Some(name) => Ok(Some(name.to_string())),
                None => Err(io_err("read", &path)(
                    Refusal::Escapes(target.to_string_lossy().into_owned()).into(),
                )),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.raw_os_error() == Some(Errno::INVAL.raw_os_error()) => {
                Err(io_err("read", &path)(Refusal::NotSymlink.into()))
            }
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    /// Whether `name` is certboot's symlink `..data/<name>`: `Ok(false)` when it is missing, an
    /// error when something else is there.
    fn check_stable_link(&self, dir: &Dir, name: &str) -> Result<bool, StoreError> {
        let path = self.dir.join(name);
        let expected = format!("{DATA_LINK}/{name}");
        match dir.read_link(name) {
            Ok(target) if target == OsStr::new(&expected) => Ok(true),
            Ok(target) => Err(io_err("read", &path)(
                Refusal::Escapes(target.to_string_lossy().into_owned()).into(),
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) if e.raw_os_error() == Some(Errno::INVAL.raw_os_error()) => {
                Err(io_err("read", &path)(Refusal::NotSymlink.into()))
            }
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }
}

/// `target` as a generation name: `..` followed by a plain name (no `/`), else `None`.
fn valid_generation(target: &OsStr) -> Option<&str> {
    let name = target.to_str()?;
    let plain = name.len() > 2 && name.starts_with("..") && !name.contains('/');
    plain.then_some(name)
}

/// The generation `..data` currently names in `dir`, if it names one.
fn generation_of(dir: &Dir) -> Option<String> {
    let target = dir.read_link(DATA_LINK).ok()?;
    valid_generation(&target).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn store(dir: &Path) -> Store {
        Store::new(&OutputConfig {
            dir: dir.to_path_buf(),
            cert_file: "cert.pem".into(),
            key_file: "key.pem".into(),
            ca_file: "ca.pem".into(),
            ca_bundle: None,
            key_mode: 0o600,
        })
    }

    fn bundle<'a>(cert: &'a str, key: &'a str) -> Bundle<'a> {
        Bundle {
            cert_pem: cert,
            key_pem: key,
            ca_pem: None,
            origin: None,
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn generations(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("..") && n != DATA_LINK)
            .collect();
        names.sort();
        names
    }

    #[test]
    fn writes_pair_with_modes_and_reads_it_back() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        assert!(s.read_pair().unwrap().is_none());
        s.write(&bundle("CERT1", "KEY1")).unwrap();
        let pair = s.read_pair().unwrap().unwrap();
        assert_eq!(pair.cert_pem, b"CERT1");
        assert_eq!(pair.key_pem.as_str(), "KEY1");
        assert_eq!(mode(&s.key_path()), 0o600);
        assert_eq!(mode(&s.cert_path()), 0o644);
        assert_eq!(
            fs::read_link(s.cert_path()).unwrap(),
            Path::new("..data/cert.pem")
        );
    }

    #[test]
    fn key_mode_is_configurable_for_fs_group_readers() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = store(tmp.path());
        s.key_mode = 0o640;
        s.write(&bundle("C", "K")).unwrap();
        assert_eq!(mode(&s.key_path()), 0o640);
    }

    #[test]
    fn keeps_current_and_previous_generation_only() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        let first = s.write(&bundle("C1", "K1")).unwrap();
        let second = s.write(&bundle("C2", "K2")).unwrap();
        let third = s.write(&bundle("C3", "K3")).unwrap();
        let gens = generations(tmp.path());
        assert!(!gens.contains(&first), "{gens:?}");
        assert!(gens.contains(&second) && gens.contains(&third), "{gens:?}");
        assert_eq!(s.read_pair().unwrap().unwrap().cert_pem, b"C3");
    }

    #[test]
    fn ca_bundle_is_written_beside_the_pair() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        s.write(&Bundle {
            cert_pem: "C",
            key_pem: "K",
            ca_pem: Some(b"CA"),
            origin: None,
        })
        .unwrap();
        assert_eq!(fs::read(tmp.path().join("ca.pem")).unwrap(), b"CA");
    }

    #[test]
    fn leftovers_of_an_interrupted_write_are_cleaned_and_current_pair_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        s.write(&bundle("C1", "K1")).unwrap();
        fs::create_dir(tmp.path().join("..999")).unwrap();
        fs::write(tmp.path().join("..999/cert.pem"), "partial").unwrap();
        std::os::unix::fs::symlink("..999", tmp.path().join(DATA_TMP_LINK)).unwrap();
        s.clean_leftovers();
        assert_eq!(generations(tmp.path()).len(), 1);
        assert_eq!(s.read_pair().unwrap().unwrap().cert_pem, b"C1");
    }

    #[test]
    fn a_file_where_the_directory_should_be_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("certs");
        fs::write(&file, "x").unwrap();
        let s = store(&file);
        let err = s.write(&bundle("C", "K")).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
    }
}
