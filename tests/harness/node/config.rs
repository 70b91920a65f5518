//! The node's configuration files and the kubelet's flags, for each Kubernetes version the test
//! bed builds (v1.20: flags for the remote runtime; newest: a KubeletConfiguration that also
//! keeps cgroup v1 and moves the pod logs into the node's directory).

use std::ffi::OsString;
use std::path::Path;

use super::super::version::KubeVersion;
use super::netns::{NODE_IP, POD_SUBNET};

/// The sandbox image, built by scripts/node-images.sh.
pub const PAUSE_IMAGE: &str = "localhost/certboot-test/pause:1";

/// containerd with everything under `dir`: root, state (also the pods' network namespaces),
/// runc's state, its socket, the CRI plugin with the local pause image, runc without systemd,
/// `restrict_oom_score_adj` (root here lacks CAP_SYS_RESOURCE: without it every sandbox fails
/// with "can't get final child's PID from pipe: EOF") and the node's CNI configuration.
pub fn containerd_toml(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"version = 2
root = "{d}/containerd/root"
state = "{d}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{d}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni"
"#
    )
}

/// The pods' network: a bridge in the node's namespace, addresses from POD_SUBNET (state in
/// `dir`), the bridge as gateway; the node's own addresses (the API server relay) are local there.
pub fn cni_conflist(dir: &Path) -> String {
    format!(
        r#"{{"cniVersion": "0.4.0", "name": "certboot-node", "plugins": [
  {{"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
    "ipam": {{"type": "host-local", "dataDir": "{}/cni-ipam",
              "ranges": [[{{"subnet": "{POD_SUBNET}"}}]], "routes": [{{"dst": "0.0.0.0/0"}}]}}}}]}}
"#,
        dir.display()
    )
}

/// The KubeletConfiguration: cgroupfs without QoS cgroups or allocatable enforcement, no swap
/// check, no read-only or healthz port, evictions only at the very end, anonymous requests
/// allowed on its port (reachable only inside the namespace).
pub fn kubelet_config(dir: &Path, version: KubeVersion) -> String {
    let d = dir.display();
    let mut text = format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
readOnlyPort: 0
healthzPort: 0
address: {NODE_IP}
port: 10250
authentication:
  anonymous: {{enabled: true}}
  webhook: {{enabled: false}}
authorization:
  mode: AlwaysAllow
evictionHard: {{"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%"}}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
resolvConf: ""
serializeImagePulls: false
"#
    );
    // The newest kubelets refuse cgroup v1 unless told (this machine has v1), take the runtime
    // endpoint here (--container-runtime-endpoint is deprecated) and can keep pod logs out of
    // /var/log/pods.
    if version.has(31) {
        text.push_str(&format!(
            "failCgroupV1: false\ncontainerRuntimeEndpoint: unix://{d}/containerd.sock\npodLogsDir: {d}/pod-logs\n"
        ));
    }
    text
}

/// The kubelet's command line (the node's name is `name`).
pub fn kubelet_args(
    dir: &Path,
    version: KubeVersion,
    name: &str,
    kubeconfig: &Path,
) -> Vec<OsString> {
    let d = dir.display();
    let mut args = vec![
        format!("--config={d}/kubelet.yaml"),
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--root-dir={d}/kubelet"),
        format!("--cert-dir={d}/kubelet-pki"),
        format!("--node-ip={NODE_IP}"),
        format!("--hostname-override={name}"),
    ];
    if !version.has(24) {
        // v1.20 talks CRI over its "remote" runtime; the flags went away with dockershim.
        args.push("--container-runtime=remote".to_owned());
        args.push(format!(
            "--container-runtime-endpoint=unix://{d}/containerd.sock"
        ));
        args.push(format!("--pod-infra-container-image={PAUSE_IMAGE}"));
    }
    args.into_iter().map(OsString::from).collect()
}
