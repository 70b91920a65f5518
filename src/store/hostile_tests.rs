//! The output directory under attack by the app container that shares it: a hostile writer
//! racing certboot's writer, and symlinks, FIFOs and oversized files planted where certboot reads.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use super::*;

/// How long any single store call may take before the test calls it a hang.
const DEADLINE: Duration = Duration::from_secs(20);

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

fn config_for(dir: &Path) -> crate::config::Config {
    let vars = [
        ("POD_NAME", "web-0"),
        ("POD_NAMESPACE", "shop"),
        ("POD_UID", "6f1d3c52"),
        ("CERTBOOT_SIGNER_NAME", "example.com/web"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .chain([("CERTBOOT_CERT_DIR".to_string(), dir.display().to_string())]);
    crate::config::Config::from_env(vars, Path::new("/nonexistent")).unwrap()
}

fn mkfifo_at(path: &Path) -> rustix::io::Result<()> {
    let mode = rustix::fs::Mode::from_raw_mode(0o644);
    rustix::fs::mknodat(rustix::fs::CWD, path, rustix::fs::FileType::Fifo, mode, 0)
}

fn mkfifo(path: &Path) {
    mkfifo_at(path).unwrap_or_else(|e| panic!("mkfifo {path:?}: {e}"));
}

/// Every file under `dir`, recursively, without following symlinks.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => out.extend(files_under(&path)),
            _ => out.push(path),
        }
    }
    out
}

/// Runs `f` on another thread; panics if it has not returned within [`DEADLINE`] (a hang).
fn within_deadline<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("{what} did not return within {DEADLINE:?}: it blocked"))
}

/// One round of the hostile writer: every generation directory it finds is moved aside and its
/// name made a symlink into the canary; `..data`, the temp links and the stable names are
/// replaced by symlinks into the canary or by FIFOs. Returns how many swaps it made.
fn sabotage(out: &Path, canary: &Path, round: usize) -> usize {
    let mut swaps = 0;
    let Ok(entries) = fs::read_dir(out) else {
        return 0;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir && name.starts_with("..") {
            // Plant a link inside first (certboot must not write through it), then swap the
            // whole directory for a symlink to the canary.
            let _ = symlink(canary.join("key.pem"), path.join("key.pem"));
            let aside = out.join(format!("aside-{round}-{swaps}"));
            if fs::rename(&path, &aside).is_ok() {
                let _ = symlink(canary, &path);
                swaps += 1;
            }
        }
    }
    for name in [
        "..data",
        "..data_tmp",
        "..cert.pem_tmp",
        "cert.pem",
        "key.pem",
    ] {
        let path = out.join(name);
        let _ = fs::remove_file(&path);
        if round.is_multiple_of(2) {
            let _ = symlink(canary, &path);
        } else {
            mkfifo_quiet(&path);
        }
        swaps += 1;
    }
    swaps
}

fn mkfifo_quiet(path: &Path) {
    let _ = mkfifo_at(path);
}

#[test]
fn a_hostile_writer_racing_the_writer_never_gets_a_byte_written_outside_the_directory() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("certs");
    let canary = root.path().join("canary");
    fs::create_dir(&out).unwrap();
    fs::create_dir(&canary).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicUsize::new(0));
    let hostile = {
        let (out, canary, stop, swaps) = (out.clone(), canary.clone(), stop.clone(), swaps.clone());
        thread::spawn(move || {
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                swaps.fetch_add(sabotage(&out, &canary, round), Ordering::Relaxed);
                round += 1;
            }
        })
    };
    let (mut ok, mut failed) = (0, 0);
    for i in 0..200 {
        let s = store(&out);
        let result = within_deadline("a write under attack", move || {
            let (cert, key) = (format!("CERT{i}"), format!("KEY{i}"));
            s.write(&Bundle {
                cert_pem: &cert,
                key_pem: &key,
                ca_pem: None,
                origin: None,
            })
            .map_err(|e| e.to_string())
        });
        match result {
            Ok(_) => ok += 1,
            Err(message) => {
                // A clean, explained failure.
                assert!(message.starts_with("could not "), "{message}");
                failed += 1;
            }
        }
        let s = store(&out);
        // Reading back under attack never blocks and never yields a partial key.
        if let Ok(Some(pair)) = within_deadline("a read under attack", move || s.read_pair()) {
            let key = pair.key_pem.as_str();
            assert!(
                key.starts_with("KEY") && key[3..].parse::<u32>().is_ok(),
                "{key:?}"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    hostile.join().unwrap();
    assert!(
        swaps.load(Ordering::Relaxed) > 200,
        "the hostile writer ran"
    );
    assert!(ok + failed == 200);
    assert_eq!(
        files_under(&canary),
        Vec::<PathBuf>::new(),
        "something was written outside the output directory ({ok} writes succeeded, {failed} failed)"
    );
    // Once the attack stops, certboot writes and reads a good pair again.
    let s = store(&out);
    s.write(&Bundle {
        cert_pem: "CERT-final",
        key_pem: "KEY-final",
        ca_pem: None,
        origin: None,
    })
    .unwrap();
    let pair = s.read_pair().unwrap().unwrap();
    assert_eq!(pair.key_pem.as_str(), "KEY-final");
}

#[test]
fn a_fifo_planted_anywhere_in_the_pair_never_blocks_a_read() {
    type Plant = fn(&Path, &str);
    let places: [(&str, Plant); 3] = [
        ("as cert.pem", |out, _| {
            fs::remove_file(out.join("cert.pem")).unwrap();
            mkfifo(&out.join("cert.pem"));
        }),
        ("as ..data", |out, _| {
            fs::remove_file(out.join("..data")).unwrap();
            mkfifo(&out.join("..data"));
        }),
        ("inside the generation, as key.pem", |out, gen| {
            fs::remove_file(out.join(gen).join("key.pem")).unwrap();
            mkfifo(&out.join(gen).join("key.pem"));
        }),
    ];
    for (place, plant) in places {
        let root = tempfile::tempdir().unwrap();
        let s = store(root.path());
        let gen = s
            .write(&Bundle {
                cert_pem: "C",
                key_pem: "K",
                ca_pem: None,
                origin: None,
            })
            .unwrap();
        plant(root.path(), &gen);
        let reader = s.clone();
        let err =
            within_deadline("read_pair", move || reader.read_pair().map(|_| ())).expect_err(place);
        assert!(
            err.to_string().contains("certboot never follows"),
            "{place}: {err}"
        );
        // `certboot check` and the reuse test at start read the same way: no hang either.
        let config = config_for(root.path());
        let checked = {
            let config = config.clone();
            within_deadline("certboot check", move || {
                crate::check::check(&config, Duration::ZERO).map(|_| ())
            })
        };
        assert!(checked.is_err(), "{place}");
        let reused = within_deadline("reuse at start", move || {
            crate::check::reusable_pair(&s, &config, None).is_some()
        });
        assert!(!reused, "{place}");
    }
}

#[test]
fn symlinks_out_of_the_directory_and_oversized_files_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("certs");
    let elsewhere = root.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::write(elsewhere.join("cert.pem"), "C").unwrap();
    fs::write(elsewhere.join("key.pem"), "K").unwrap();
    let s = store(&out);
    let gen = s
        .write(&Bundle {
            cert_pem: "C",
            key_pem: "K",
            ca_pem: None,
            origin: None,
        })
        .unwrap();
    let refused = |what: &str| {
        let err = s.read_pair().map(|_| ()).expect_err(what);
        assert!(
            err.to_string().contains("certboot never follows"),
            "{what}: {err}"
        );
    };
    // The stable name pointing straight out.
    fs::remove_file(out.join("cert.pem")).unwrap();
    symlink(elsewhere.join("cert.pem"), out.join("cert.pem")).unwrap();
    refused("cert.pem -> elsewhere");
    symlink("..data/cert.pem", out.join("cert.tmp")).unwrap();
    fs::rename(out.join("cert.tmp"), out.join("cert.pem")).unwrap();
    // ..data pointing out (absolute, and relative with ../).
    for target in [elsewhere.clone(), PathBuf::from("../elsewhere")] {
        fs::remove_file(out.join("..data")).unwrap();
        symlink(&target, out.join("..data")).unwrap();
        refused("..data -> elsewhere");
    }
    fs::remove_file(out.join("..data")).unwrap();
    symlink(&gen, out.join("..data")).unwrap();
    // The generation itself a symlink to elsewhere.
    fs::rename(out.join(&gen), out.join("aside")).unwrap();
    symlink(&elsewhere, out.join(&gen)).unwrap();
    refused("generation -> elsewhere");
    fs::remove_file(out.join(&gen)).unwrap();
    fs::rename(out.join("aside"), out.join(&gen)).unwrap();
    // A file inside the generation that is a symlink.
    fs::remove_file(out.join(&gen).join("key.pem")).unwrap();
    symlink(elsewhere.join("key.pem"), out.join(&gen).join("key.pem")).unwrap();
    refused("key.pem in the generation -> elsewhere");
    // Over the 1 MiB cap.
    fs::remove_file(out.join(&gen).join("key.pem")).unwrap();
    fs::write(
        out.join(&gen).join("key.pem"),
        vec![b'K'; MAX_READ as usize + 1],
    )
    .unwrap();
    let err = s.read_pair().map(|_| ()).expect_err("oversized");
    assert!(err.to_string().contains("more than 1048576 bytes"), "{err}");
    // Exactly at the cap is read.
    fs::write(
        out.join(&gen).join("key.pem"),
        vec![b'K'; MAX_READ as usize],
    )
    .unwrap();
    assert!(s.read_pair().unwrap().is_some());
}

#[test]
fn a_symlink_as_the_output_directory_itself_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let canary = root.path().join("canary");
    fs::create_dir(&canary).unwrap();
    symlink(&canary, root.path().join("certs")).unwrap();
    let err = store(&root.path().join("certs"))
        .write(&Bundle {
            cert_pem: "C",
            key_pem: "K",
            ca_pem: None,
            origin: None,
        })
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Set CERTBOOT_CERT_DIR to the directory itself"),
        "{err}"
    );
    assert!(files_under(&canary).is_empty());
}

#[test]
fn directories_owned_by_another_user_are_refused() {
    assert!(super::dirfd::owner_ok(1000, 1000));
    assert!(
        super::dirfd::owner_ok(0, 1000),
        "an emptyDir as the kubelet makes it"
    );
    assert!(!super::dirfd::owner_ok(1001, 1000));
    if super::dirfd::euid() != 0 {
        return; // chown to another uid needs root; the rule itself is checked above.
    }
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("certs");
    fs::create_dir(&out).unwrap();
    std::os::unix::fs::chown(&out, Some(4242), None).unwrap();
    let err = store(&out)
        .write(&Bundle {
            cert_pem: "C",
            key_pem: "K",
            ca_pem: None,
            origin: None,
        })
        .unwrap_err();
    assert!(err.to_string().contains("owned by uid 4242"), "{err}");
    assert!(
        err.to_string()
            .contains("run certboot as the directory's owner"),
        "{err}"
    );
    assert!(
        fs::read_dir(&out).unwrap().next().is_none(),
        "nothing written"
    );
}

#[test]
fn a_directory_planted_under_a_link_name_does_not_block_later_writes() {
    let root = tempfile::tempdir().unwrap();
    let s = store(root.path());
    for name in ["..data_tmp", "..cert.pem_tmp", "..data", "cert.pem"] {
        fs::create_dir(root.path().join(name)).unwrap();
        fs::write(root.path().join(name).join("x"), "planted").unwrap();
    }
    s.write(&Bundle {
        cert_pem: "C",
        key_pem: "K",
        ca_pem: None,
        origin: None,
    })
    .unwrap();
    assert_eq!(s.read_pair().unwrap().unwrap().cert_pem, b"C");
}
