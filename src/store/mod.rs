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

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use crate::config::OutputConfig;

const DATA_LINK: &str = "..data";
const DATA_TMP_LINK: &str = "..data_tmp";
const CERT_MODE: u32 = 0o644;
const CA_MODE: u32 = 0o644;
const GENERATION_DIR_MODE: u32 = 0o755;

/// A failed file-system step, with the path and what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("could not {action} {}: {source}. {}", .path.display(), hint(.source))]
pub struct StoreError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn hint(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(libc::EROFS) => "The directory is read-only: mount a writable volume (an emptyDir) at CERTBOOT_CERT_DIR",
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => "The volume is full: free space or raise the emptyDir sizeLimit (a pair needs a few KiB)",
        Some(libc::EACCES) | Some(libc::EPERM) => {
            "Permission denied: make the volume writable for certboot's user (runAsUser / fsGroup in the pod's securityContext)"
        }
        Some(libc::ENOENT) => "The directory does not exist: mount a volume at CERTBOOT_CERT_DIR",
        _ => "Check the volume mounted at CERTBOOT_CERT_DIR",
    }
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// What to write: the verified chain, the key, and optionally a CA bundle.
pub struct Bundle<'a> {
    pub cert_pem: &'a str,
    pub key_pem: &'a str,
    pub ca_pem: Option<&'a [u8]>,
}

/// A pair read back from disk. The key text is zeroized on drop.
pub struct StoredPair {
    pub cert_pem: Vec<u8>,
    pub key_pem: Zeroizing<String>,
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

    /// Reads the current pair; `Ok(None)` when either file does not exist.
    pub fn read_pair(&self) -> Result<Option<StoredPair>, StoreError> {
        let cert_path = self.cert_path();
        let key_path = self.key_path();
        let cert_pem = match fs::read(&cert_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", &cert_path)(e)),
        };
        let key_pem = match fs::read(&key_path) {
            Ok(bytes) => {
                Zeroizing::new(String::from_utf8_lossy(&Zeroizing::new(bytes)).into_owned())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", &key_path)(e)),
        };
        Ok(Some(StoredPair { cert_pem, key_pem }))
    }

    /// Writes a new generation and makes it current with one rename. Returns the generation's name.
    pub fn write(&self, bundle: &Bundle<'_>) -> Result<String, StoreError> {
        ensure_dir(&self.dir)?;
        let previous = fs::read_link(self.dir.join(DATA_LINK)).ok();
        let generation = generation_name();
        let generation_dir = self.dir.join(&generation);
        if let Err(e) = self.write_generation(&generation_dir, bundle) {
            let _ = fs::remove_dir_all(&generation_dir);
            return Err(e);
        }
        let linked = self
            .link_stable_names(bundle.ca_pem.is_some())
            .and_then(|()| {
                replace_symlink(&self.dir, Path::new(&generation), DATA_TMP_LINK, DATA_LINK)
            });
        if let Err(e) = linked {
            let _ = fs::remove_dir_all(&generation_dir);
            return Err(e);
        }
        sync_dir(&self.dir)?;
        self.remove_stale(&generation, previous.as_deref());
        Ok(generation)
    }

    fn write_generation(&self, dir: &Path, bundle: &Bundle<'_>) -> Result<(), StoreError> {
        DirBuilder::new()
            .mode(GENERATION_DIR_MODE)
            .create(dir)
            .map_err(io_err("create directory", dir))?;
        write_file(
            &dir.join(&self.key_file),
            bundle.key_pem.as_bytes(),
            self.key_mode,
        )?;
        write_file(
            &dir.join(&self.cert_file),
            bundle.cert_pem.as_bytes(),
            CERT_MODE,
        )?;
        if let Some(ca) = bundle.ca_pem {
            write_file(&dir.join(&self.ca_file), ca, CA_MODE)?;
        }
        sync_dir(dir)
    }

    /// Makes `cert.pem` etc. symlinks into `..data/`. Created before the `..data` swap, so on the
    /// very first write they dangle for a moment: a reader then sees "no file", never a partial one.
    fn link_stable_names(&self, with_ca: bool) -> Result<(), StoreError> {
        let mut names = vec![&self.cert_file, &self.key_file];
        if with_ca {
            names.push(&self.ca_file);
        }
        for name in names {
            let target = Path::new(DATA_LINK).join(name);
            let link = self.dir.join(name);
            if fs::read_link(&link).ok().as_deref() == Some(target.as_path()) {
                continue;
            }
            replace_symlink(&self.dir, &target, &format!("..{name}_tmp"), name)?;
        }
        Ok(())
    }

    /// Removes generations other than the current and previous one, and temp links left by
    /// interrupted writes. Best effort: a failure here never fails a write.
    fn remove_stale(&self, current: &str, previous: Option<&Path>) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let keep = name == DATA_LINK
                || name == current
                || previous.is_some_and(|p| p == Path::new(name.as_ref()));
            if keep || !name.starts_with("..") {
                continue;
            }
            let path = entry.path();
            let _ = match entry.file_type() {
                Ok(t) if t.is_dir() => fs::remove_dir_all(&path),
                _ => fs::remove_file(&path),
            };
        }
    }

    /// Removes leftovers of interrupted writes (temp links, unreferenced generations) without
    /// touching the current pair. Called at start-up.
    pub fn clean_leftovers(&self) {
        let current = fs::read_link(self.dir.join(DATA_LINK)).ok();
        if let Some(current) = current {
            self.remove_stale(&current.to_string_lossy(), None);
        } else if self.dir.is_dir() {
            self.remove_stale("", None);
        }
    }
}

fn ensure_dir(dir: &Path) -> Result<(), StoreError> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(StoreError {
            action: "use",
            path: dir.to_path_buf(),
            source: io::Error::new(io::ErrorKind::AlreadyExists, "not a directory"),
        }),
        Err(_) => DirBuilder::new()
            .recursive(true)
            .mode(GENERATION_DIR_MODE)
            .create(dir)
            .map_err(io_err("create directory", dir)),
    }
}

fn generation_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("..{nanos}")
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), StoreError> {
    let mut file: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_err("create", path))?;
    // The umask may have narrowed `mode`; set it exactly.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_err("set permissions on", path))?;
    file.write_all(contents).map_err(io_err("write", path))?;
    file.sync_all().map_err(io_err("fsync", path))
}

fn replace_symlink(
    dir: &Path,
    target: &Path,
    tmp_name: &str,
    name: &str,
) -> Result<(), StoreError> {
    let tmp = dir.join(tmp_name);
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(io_err("create symlink", &tmp))?;
    let dest = dir.join(name);
    fs::rename(&tmp, &dest).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err("rename symlink onto", &dest)(e)
    })
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

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
