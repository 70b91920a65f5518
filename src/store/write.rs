//! The atomic writer: a new generation directory, fsynced, made current by renaming `..data`;
//! stale generations and leftovers of interrupted writes removed.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::error::{io_err, StoreError};
use super::{Bundle, Store, CA_MODE, CERT_MODE, DATA_LINK, DATA_TMP_LINK, GENERATION_DIR_MODE};

impl Store {
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
