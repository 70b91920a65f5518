//! The node's network namespace: created by the harness (`ip netns add`), holding the kubelet,
//! containerd, the pods' bridge (`cni0`, made by the CNI bridge plugin) and `node0`, one end of a
//! veth pair whose other end stays in the namespace too. Nothing in it reaches the host's
//! interfaces: the API server is reached through [`super::bridge`], a userspace relay whose
//! listening sockets live here and whose outgoing connections go to the host's loopback.

use std::io;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;
use std::process::Command;

/// Every node namespace (and the node's directory under the temp dir) is named
/// `certboot-node-<pid of the test process>-<counter>`; the sweep finds leftovers by it.
pub const PREFIX: &str = "certboot-node-";
/// The node's address (`status.hostIP`, the kubelet's `--node-ip`).
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 2);
/// The pods' subnet (CNI bridge `cni0`, host-local IPAM); the gateway is `.1`.
pub const POD_SUBNET: &str = "10.213.1.0/24";
/// The `kubernetes` Service's ClusterIP (first address of the control plane's
/// `--service-cluster-ip-range`): a local address of the node, where the relay listens on 443.
pub const SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

/// `/run/netns/<name>`.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

/// Creates the namespace with loopback up, `node0` (NODE_IP/24 and SERVICE_IP/32) and a default
/// route into it (so nothing is "unreachable"; whatever goes there ends at the veth's other end).
pub fn create(name: &str) -> Result<(), String> {
    ip(&["netns", "add", name])?;
    let node_ip = format!("{NODE_IP}/24");
    let service_ip = format!("{SERVICE_IP}/32");
    let steps: [&[&str]; 7] = [
        &["link", "set", "lo", "up"],
        &[
            "link",
            "add",
            "node0",
            "type",
            "veth",
            "peer",
            "name",
            "node0-peer",
        ],
        &["addr", "add", &node_ip, "dev", "node0"],
        &["addr", "add", &service_ip, "dev", "node0"],
        &["link", "set", "node0", "up"],
        &["link", "set", "node0-peer", "up"],
        &["route", "add", "default", "dev", "node0"],
    ];
    for step in steps {
        let mut args = vec!["-n", name];
        args.extend_from_slice(step);
        ip(&args)?;
    }
    Ok(())
}

/// Deletes the namespace's name (the namespace itself goes once no process or socket uses it).
pub fn delete(name: &str) -> Result<(), String> {
    if !path(name).exists() {
        return Ok(());
    }
    ip(&["netns", "delete", name])
}

/// Names of the harness's namespaces, from this and earlier runs.
pub fn list() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(PREFIX))
                .collect()
        })
        .unwrap_or_default()
}

/// Pids of the processes in the namespace (what `ip netns pids` prints).
pub fn pids(name: &str) -> Vec<i32> {
    let Ok(target) = std::fs::metadata(path(name)).map(|m| m.ino()) else {
        return Vec::new();
    };
    let wanted = format!("net:[{target}]");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|link| link.as_os_str() == wanted.as_str())
        })
        .collect()
}

/// Runs `f` on a new thread that has joined the namespace; sockets it creates stay in the
/// namespace for their whole life, whichever thread uses them later.
pub fn run_in<T, F>(name: &str, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    let file = std::fs::File::open(path(name))?;
    std::thread::Builder::new()
        .name("harness-netns".into())
        .spawn(move || {
            // SAFETY: setns(2) on an open namespace file; affects only this thread.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            f()
        })?
        .join()
        .map_err(|_| io::Error::other("the namespace thread panicked"))?
}

fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("run ip {}: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}
