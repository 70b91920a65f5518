//! Tearing a node down completely, also one left behind by a test process that was killed:
//! every process in its network namespace (kubelet, containerd, shims) and in its containers'
//! cgroups (pods on the bridge have namespaces of their own), the containers' cgroups, every
//! mount under its directory (volumes, root filesystems, the pods' network namespaces), its pod
//! logs in /var/log/pods (v1.20 writes them there), the namespace, the directory.
//!
//! Leftovers are found by name: namespace and directory `certboot-node-<pid>-<n>` whose test
//! process `<pid>` is gone. Only what the harness started is touched.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::netns;

/// The cgroup parent containerd's CRI plugin gives containers when the kubelet passes none
/// (cgroupsPerQOS: false): `/k8s.io/<container id>` in every hierarchy.
const CGROUP_PARENT: &str = "k8s.io";
const KILL_DEADLINE: Duration = Duration::from_secs(20);

/// Removes everything of node `name` (namespace) with directory `dir`; returns what could not
/// be removed (empty when all went).
pub fn clean_up(name: &str, dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let containers = container_ids(dir);
    // First the namespace's processes (the kubelet and containerd would start containers
    // again), then whatever still runs in the containers' cgroups.
    if let Err(e) = kill_until_gone("the node's network namespace", || netns::pids(name)) {
        problems.push(e);
    }
    for id in &containers {
        let cgroups = cgroup_dirs(id);
        let what = format!("container {id}");
        if let Err(e) = kill_until_gone(&what, || cgroup_pids(&cgroups)) {
            problems.push(e);
        }
        for cgroup in cgroups {
            if let Err(e) = std::fs::remove_dir(&cgroup) {
                problems.push(format!("rmdir {}: {e}", cgroup.display()));
            }
        }
    }
    problems.extend(unmount_under(dir));
    for uid in pod_uids(dir) {
        remove_pod_logs(&uid);
    }
    if let Err(e) = netns::delete(name) {
        problems.push(e);
    }
    problems
}

/// Cleans up the nodes of test processes that no longer run (namespaces and directories).
pub fn sweep_leftovers() {
    let temp = std::env::temp_dir();
    let mut names = netns::list();
    if let Ok(entries) = std::fs::read_dir(&temp) {
        names.extend(
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(netns::PREFIX)),
        );
    }
    names.sort();
    names.dedup();
    for name in names {
        let Some(pid) = owner_pid(&name) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue; // its test process still runs (and cleans up itself)
        }
        let dir = temp.join(&name);
        let problems = clean_up(&name, &dir);
        let removed = remove_dir_unless_mounted(&dir);
        eprintln!(
            "harness: swept the leftovers of node {name} (test process {pid} is gone){}",
            if problems.is_empty() && removed.is_ok() || !dir.exists() {
                String::new()
            } else {
                format!("; not removed: {problems:?} {removed:?}")
            }
        );
    }
}

/// `certboot-node-<pid>-<n>` → pid.
fn owner_pid(name: &str) -> Option<u32> {
    name.strip_prefix(netns::PREFIX)?
        .split('-')
        .next()?
        .parse()
        .ok()
}

fn container_ids(dir: &Path) -> Vec<String> {
    let tasks = dir.join("containerd/state/io.containerd.runtime.v2.task/k8s.io");
    names_in(&tasks)
        .into_iter()
        .filter(|id| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect()
}

fn pod_uids(dir: &Path) -> Vec<String> {
    names_in(&dir.join("kubelet/pods"))
}

fn names_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `/sys/fs/cgroup/<hierarchy>/k8s.io/<id>` (v1) or `/sys/fs/cgroup/k8s.io/<id>` (v2) that exist.
fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut dirs = vec![root.join(CGROUP_PARENT).join(id)];
    dirs.extend(
        names_in(root)
            .into_iter()
            .map(|h| root.join(h).join(CGROUP_PARENT).join(id)),
    );
    dirs.into_iter().filter(|d| d.is_dir()).collect()
}

fn cgroup_pids(cgroups: &[PathBuf]) -> Vec<i32> {
    let mut pids: Vec<i32> = cgroups
        .iter()
        .filter_map(|c| std::fs::read_to_string(c.join("cgroup.procs")).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// SIGKILLs what `pids` lists until it lists nothing (zombies of the harness's own children are
/// reaped by their `Component`s, so they are not waited for).
fn kill_until_gone(what: &str, pids: impl Fn() -> Vec<i32>) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let alive: Vec<i32> = pids().into_iter().filter(|p| !is_zombie(*p)).collect();
        if alive.is_empty() {
            return Ok(());
        }
        for pid in &alive {
            // SAFETY: kill(2) with a pid found in the node's own namespace or cgroup.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        if start.elapsed() > KILL_DEADLINE {
            return Err(format!("processes in {what} survived SIGKILL: {alive:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                == Some("Z")
        })
        .unwrap_or(true)
}

/// Unmounts (lazily, deepest first) every mount point at or under `dir`.
fn unmount_under(dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for _round in 0..5 {
        let mut points = mount_points_under(dir);
        if points.is_empty() {
            return problems;
        }
        points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
        for point in points {
            let Ok(c_path) = std::ffi::CString::new(point.as_os_str().as_encoded_bytes()) else {
                continue;
            };
            // SAFETY: umount2(2) with a NUL-terminated path.
            if unsafe { libc::umount2(c_path.as_ptr(), libc::MNT_DETACH) } != 0 {
                problems.push(format!(
                    "umount {}: {}",
                    point.display(),
                    std::io::Error::last_os_error()
                ));
            }
        }
    }
    problems.push(format!("mounts left under {}", dir.display()));
    problems
}

/// Removes the node's directory, unless something is still mounted under it:
/// `remove_dir_all` would cross the mount point and delete what the mount shows (a bind mount of
/// a host directory, say). Then the directory stays, and the error names the mounts.
pub fn remove_dir_unless_mounted(dir: &Path) -> std::io::Result<()> {
    let mounts = mount_points_under(dir);
    if !mounts.is_empty() {
        return Err(std::io::Error::other(format!(
            "not removed: still mounted under it: {mounts:?}"
        )));
    }
    std::fs::remove_dir_all(dir)
}

fn mount_points_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape_mount_path(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(std::ffi::OsString::from(
        String::from_utf8_lossy(&out).into_owned(),
    ))
}

/// /var/log/pods/<namespace>_<pod>_<uid> of one pod.
fn remove_pod_logs(uid: &str) {
    let suffix = format!("_{uid}");
    for name in names_in(Path::new("/var/log/pods")) {
        if name.ends_with(&suffix) {
            let _ = std::fs::remove_dir_all(Path::new("/var/log/pods").join(name));
        }
    }
}
