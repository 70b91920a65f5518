//! The atomic writer: a new generation directory, fsynced, made current by renaming `..data`;
//! stale generations and leftovers of interrupted writes removed.
//!
//! Every step after the first goes through a directory descriptor ([`Dir`]), never a path, so the
//! app container (which may write to the same `emptyDir`) cannot redirect a write by swapping a
//! name for a symlink or a FIFO between two steps: such a swap makes the write fail cleanly
//! (`ELOOP`, `ENOTDIR`, `EEXIST`) and nothing is written outside the directory.

use std::fs::{self, DirBuilder};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::io::Errno;

use super::dirfd::{Dir, Kind, Refusal};
use super::error::{io_err, StoreError};
use super::origin::ORIGIN_FILE;
use super::{
    generation_of, Bundle, Store, CA_MODE, CERT_MODE, DATA_LINK, DATA_TMP_LINK,
    GENERATION_DIR_MODE, ORIGIN_MODE,
};

/// How deep a stale generation (or a tree planted in its place) is removed.
const REMOVE_DEPTH: u32 = 4;

impl Store {
    /// Writes a new generation and makes it current with one rename. Returns the generation's name.
    ///
    /// The steps (Kubernetes' AtomicWriter, as cert-manager's csi-lib uses it):
    /// 1. open the output directory `O_DIRECTORY | O_NOFOLLOW`, owned by certboot's uid or root;
    /// 2. note the current generation (`..data`), kept as the previous one;
    /// 3. create the generation directory `..<nanoseconds>` and open it by descriptor, again
    ///    `O_NOFOLLOW` and owner-checked;
    /// 4. create each file in it (key, certificate, CA bundle, the record `.certboot.json`)
    ///    `O_CREAT | O_EXCL | O_NOFOLLOW`, write, fsync; fsync the directory;
    /// 5. point the stable names (`cert.pem` → `..data/cert.pem`) with a temp symlink + rename;
    /// 6. the commit point: symlink `..data_tmp` → the generation, renamed onto `..data`;
    /// 7. fsync the output directory;
    /// 8. remove generations other than the current and the previous one.
    pub fn write(&self, bundle: &Bundle<'_>) -> Result<String, StoreError> {
        // 1.
        ensure_dir(&self.dir)?;
        let dir = self.open_output_dir()?;
        // 2.
        let previous = generation_of(&dir);
        // 3. + 4.
        let generation = generation_name();
        if let Err(e) = self.write_generation(&dir, &generation, bundle) {
            let _ = dir.remove_all(&generation, REMOVE_DEPTH);
            return Err(e);
        }
        // 5. + 6.
        let linked = self
            .link_stable_names(&dir, bundle.ca_pem.is_some())
            .and_then(|()| self.replace_symlink(&dir, &generation, DATA_TMP_LINK, DATA_LINK));
        if let Err(e) = linked {
            let _ = dir.remove_all(&generation, REMOVE_DEPTH);
            return Err(e);
        }
        // 7.
        dir.sync().map_err(io_err("fsync directory", &self.dir))?;
        // 8.
        remove_stale(&dir, &generation, previous.as_deref());
        Ok(generation)
    }

    /// Step 1: the output directory, by descriptor.
    pub(super) fn open_output_dir(&self) -> Result<Dir, StoreError> {
        let dir = Dir::open(&self.dir)
            .map_err(|e| match e.raw_os_error().map(Errno::from_raw_os_error) {
                // O_DIRECTORY | O_NOFOLLOW on a symlink: ENOTDIR on Linux, ELOOP elsewhere.
                Some(Errno::NOTDIR) | Some(Errno::LOOP) => Refusal::NotDirectory.into(),
                _ => e,
            })
            .map_err(io_err("open directory", &self.dir))?;
        dir.check_owner()
            .map_err(io_err("use directory", &self.dir))?;
        Ok(dir)
    }

    /// Steps 3 and 4.
    fn write_generation(
        &self,
        dir: &Dir,
        generation: &str,
        bundle: &Bundle<'_>,
    ) -> Result<(), StoreError> {
        let path = self.dir.join(generation);
        dir.mkdir(generation, GENERATION_DIR_MODE)
            .map_err(io_err("create directory", &path))?;
        let gen = dir
            .open_dir(generation)
            .map_err(io_err("open directory", &path))?;
        gen.check_owner().map_err(io_err("use directory", &path))?;
        let mut files = vec![
            (&self.key_file, bundle.key_pem.as_bytes(), self.key_mode),
            (&self.cert_file, bundle.cert_pem.as_bytes(), CERT_MODE),
        ];
        if let Some(ca) = bundle.ca_pem {
            files.push((&self.ca_file, ca, CA_MODE));
        }
        let origin_file = ORIGIN_FILE.to_string();
        if let Some(origin) = bundle.origin {
            files.push((&origin_file, origin.as_bytes(), ORIGIN_MODE));
        }
        for (name, contents, mode) in files {
            write_file(&gen, name, contents, mode)
                .map_err(|(action, e)| io_err(action, &path.join(name))(e))?;
        }
        gen.sync().map_err(io_err("fsync directory", &path))
    }

    /// Step 5: makes `cert.pem` etc. symlinks into `..data/`. Created before the `..data` swap,
    /// so on the very first write they dangle for a moment: a reader then sees "no file", never a
    /// partial one.
    fn link_stable_names(&self, dir: &Dir, with_ca: bool) -> Result<(), StoreError> {
        let mut names = vec![&self.cert_file, &self.key_file];
        if with_ca {
            names.push(&self.ca_file);
        }
        for name in names {
            let target = format!("{DATA_LINK}/{name}");
            if dir.read_link(name).ok().as_deref() == Some(std::ffi::OsStr::new(&target)) {
                continue;
            }
            self.replace_symlink(dir, &target, &format!("..{name}_tmp"), name)?;
        }
        Ok(())
    }

    /// Makes `name` a symlink to `target` in one rename (via `tmp_name`).
    fn replace_symlink(
        &self,
        dir: &Dir,
        target: &str,
        tmp_name: &str,
        name: &str,
    ) -> Result<(), StoreError> {
        let tmp = self.dir.join(tmp_name);
        // Whatever sits under the temp name (a leftover link, or a directory planted there).
        let _ = dir.remove_all(tmp_name, REMOVE_DEPTH);
        dir.symlink(target, tmp_name)
            .map_err(io_err("create symlink", &tmp))?;
        let mut renamed = dir.rename(tmp_name, name);
        // rename(2) cannot replace a directory by a symlink. certboot never makes a directory
        // under these names, so one there was planted: remove it and rename again.
        if renamed.is_err() && matches!(dir.kind(name), Ok(Kind::Dir)) {
            let _ = dir.remove_all(name, REMOVE_DEPTH);
            renamed = dir.rename(tmp_name, name);
        }
        renamed.map_err(|e| {
            let _ = dir.unlink(tmp_name);
            io_err("rename symlink onto", &self.dir.join(name))(e)
        })
    }

    /// Removes leftovers of interrupted writes (temp links, unreferenced generations) without
    /// touching the current pair. Called at start-up; best effort.
    pub fn clean_leftovers(&self) {
        let Ok(dir) = self.open_output_dir() else {
            return;
        };
        let current = generation_of(&dir).unwrap_or_default();
        remove_stale(&dir, &current, None);
    }
}

/// Step 8: removes generations other than the current and previous one, and temp links left by
/// interrupted writes. Best effort: a failure here never fails a write.
fn remove_stale(dir: &Dir, current: &str, previous: Option<&str>) {
    let Ok(entries) = dir.entries() else {
        return;
    };
    for name in entries {
        let Some(name) = name.to_str() else { continue };
        let keep = name == DATA_LINK || name == current || previous == Some(name);
        if keep || !name.starts_with("..") {
            continue;
        }
        let _ = dir.remove_all(name, REMOVE_DEPTH);
    }
}

fn ensure_dir(dir: &Path) -> Result<(), StoreError> {
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(meta) if meta.file_type().is_symlink() => Ok(()), // refused by open_output_dir
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

/// Creates `name` in the generation directory (nothing may be there already), writes, fsyncs.
fn write_file(
    gen: &Dir,
    name: &str,
    contents: &[u8],
    mode: u32,
) -> Result<(), (&'static str, io::Error)> {
    let mut file = gen.create_file(name, mode).map_err(|e| ("create", e))?;
    // The umask may have narrowed `mode`; set it exactly (fchmod, on the descriptor).
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| ("set permissions on", e))?;
    file.write_all(contents).map_err(|e| ("write", e))?;
    file.sync_all().map_err(|e| ("fsync", e))
}
