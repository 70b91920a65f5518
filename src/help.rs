//! The text of `certboot --help` and `certboot --version`.

/// `certboot --help`.
pub const HELP: &str = r#"certboot - gives a Kubernetes pod its own TLS certificate through the CSR API

USAGE:
    certboot                 obtain the certificate (CERTBOOT_MODE=init), or keep it renewed (sidecar)
    certboot --dry-run       print the CSR certboot would file; no API call, no file written
    certboot check [--min-valid DURATION]
                             exit 0 only if the pair on disk matches, is valid, and is the one certboot
                             obtained for this pod's configuration (exec probe; same environment as certboot)
    certboot --help | --version

Configuration comes from the environment only.

POD IDENTITY (Downward API):
    POD_NAME              required   metadata.name
    POD_NAMESPACE         optional   metadata.namespace; default: the service account's namespace file
    POD_UID               required   metadata.uid (the CSR name uses its first 6 characters)
    POD_IPS / POD_IP      optional   status.podIPs / status.podIP, added as IP SANs

CERTBOOT_ VARIABLES:
    CERTBOOT_SIGNER_NAME         required  signer, e.g. kubernetes.io/kube-apiserver-client, example.com/my-signer
    CERTBOOT_MODE                init      init: obtain once and exit; sidecar: also renew before expiry
    CERTBOOT_COMMON_NAME         <pod>.<namespace>   subject CN
    CERTBOOT_ORGANIZATIONS       (none)    subject O, comma-separated
    CERTBOOT_DNS_NAMES           (none)    DNS SANs, comma-separated
    CERTBOOT_IP_ADDRESSES        (none)    extra IP SANs, comma-separated
    CERTBOOT_URIS                (none)    URI SANs, comma-separated (e.g. spiffe://...)
    CERTBOOT_INCLUDE_POD_IPS     true      add the pod's IPs as IP SANs
    CERTBOOT_USAGES              per signer  "digital signature" + "client auth" for kubernetes.io/kube-apiserver-client(-kubelet),
                                           "server auth" otherwise; "key encipherment" added for RSA keys
    CERTBOOT_KEY_ALGORITHM       ecdsa-p256  ecdsa-p256, ecdsa-p384, ecdsa-p521, ed25519, rsa-2048, rsa-3072, rsa-4096, rsa-8192
    CERTBOOT_EXPIRATION_SECONDS  (signer default)  requested lifetime, at least 600 (API servers < 1.22 ignore it)
    CERTBOOT_CERT_DIR            /certs    output directory (mount an emptyDir here)
    CERTBOOT_CERT_FILE           cert.pem  certificate chain file name, mode 0644
    CERTBOOT_KEY_FILE            key.pem   private key file name (PKCS#8 PEM)
    CERTBOOT_KEY_MODE            0600      key file mode: 0600, 0640 (for fsGroup readers), 0400, 0440
    CERTBOOT_CA_BUNDLE           (none)    path of a PEM bundle to copy beside the pair
    CERTBOOT_CA_FILE             ca.pem    file name for that bundle
    CERTBOOT_TIMEOUT             (none)    give up after this long (e.g. 5m); default: wait, logging progress
    CERTBOOT_PROGRESS_INTERVAL   30s       how often to log that certboot is still waiting
    CERTBOOT_RENEW_BEFORE        (1/3 of lifetime)  sidecar: renew this long before expiry (e.g. 1h)
    CERTBOOT_MIN_LIFETIME        10m       refuse shorter certificates; renewals at least a tenth of it apart
    CERTBOOT_MAX_LIFETIME        398d      refuse longer certificates, issued or found on disk
    CERTBOOT_RELOAD_SIGNAL       (none)    sidecar: signal to send after each renewal, e.g. SIGHUP
    CERTBOOT_RELOAD_PROCESS      (none)    sidecar: process name to signal (needs shareProcessNamespace: true)
    CERTBOOT_RELOAD_ALLOW_TERMINATING  false  allow SIGTERM/SIGINT/SIGQUIT/SIGKILL as the reload signal
    CERTBOOT_DELETE_CSR          false     delete each CSR once its certificate is on disk (needs verb delete)
    CERTBOOT_METRICS_ADDR        (off)     sidecar: serve Prometheus metrics and /healthz, e.g. 0.0.0.0:9402
    CERTBOOT_EVENTS              true      post Events on the pod (kubectl describe pod)
    CERTBOOT_TERMINATION_LOG     /dev/termination-log   where a failure's one-line cause goes; "off" to disable
    CERTBOOT_LOG_FORMAT          text      text or json
    CERTBOOT_LOG                 info      log filter (tracing syntax); RUST_LOG also works
    KUBECONFIG                   (in-cluster)  outside a pod: the kubeconfig to use

EXIT CODES:
    0  certificate and key are in place (check: pair good)
    1  Kubernetes API failure (unreachable, RBAC, rejected) or other runtime failure
    2  configuration error (nothing sent, nothing written)
    3  the CSR was denied or failed
    4  CERTBOOT_TIMEOUT passed before the certificate was issued
    5  the issued certificate was rejected (check: pair mismatched, expired, not certboot's for this pod,
       or valid for less than --min-valid)
    6  the output directory could not be written or holds entries certboot refuses (check: no pair on disk)

MINIMAL POD SPEC:
    spec:
      serviceAccountName: certboot          # bound to manifests/rbac.yaml
      # every container gets the token here; to give it to certboot only, see the README's
      # Pod spec (automountServiceAccountToken: false, a projected token volume for certboot)
      initContainers:
      - name: certboot
        image: ghcr.io/certboot/certboot:0.1.0
        env:
        - {name: CERTBOOT_SIGNER_NAME, value: example.com/my-signer}
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: POD_NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
        - {name: POD_UID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}
        - {name: POD_IPS, valueFrom: {fieldRef: {fieldPath: status.podIPs}}}
        volumeMounts: [{name: certs, mountPath: /certs}]
      containers:
      - name: app
        image: my-app
        volumeMounts: [{name: certs, mountPath: /certs, readOnly: true}]
      volumes:
      - {name: certs, emptyDir: {medium: Memory}}
"#;
