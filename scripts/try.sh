#!/usr/bin/env bash
# The whole certboot loop on this machine, no cluster needed:
#
#   scripts/try.sh
#
# 1. builds certboot and certboot-controller (`cargo build --bins`);
# 2. gets the test bed's newest control plane from `scripts/testenv.sh newest` (the first time
#    it builds it from source, about 25 minutes on 2 cores; then it is cached);
# 3. starts etcd and kube-apiserver on free loopback ports, in a temporary directory;
# 4. applies manifests/rbac.yaml (into "default") and manifests/approver/ (namespace, RBAC,
#    policy) as `kubectl apply` would, with curl;
# 5. creates Service web and Pod web-0 as a kubelet would see them (IP in status), and a token
#    bound to that pod (the token the kubelet mounts);
# 6. runs certboot-controller (approver and signer, a throw-away CA made with openssl);
# 7. runs certboot with the environment the pod spec gives it (README, "Pod spec");
# 8. prints the issued certificate and where its files are, then stops everything and removes
#    the directory.
#
# Environment:
#   KUBEBUILDER_ASSETS        a directory with etcd and kube-apiserver (default: testenv.sh newest)
#   CERTBOOT_BIN, CERTBOOT_CONTROLLER_BIN   binaries to run instead of building them
#   CERTBOOT_TRY_KEEP=1       keep the directory (certificate, CA, logs) after a successful run
# On a failure the directory is kept for its logs; processes are stopped in every case (Ctrl-C
# included). Needs bash, curl, openssl and python3 (JSON only); no kubectl.
set -euo pipefail

case "${1:-}" in
  "") ;;
  -h | --help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: scripts/try.sh (no arguments; --help says what it does)" >&2; exit 2 ;;
esac

repo="$(cd "$(dirname "$0")/.." && pwd)"
started=$SECONDS
say() { printf 'try: %s\n' "$*"; }

# ---- cleanup: everything started here stops, the directory goes -------------------------------

dir=""
pids=()
signals=() # how each is stopped: TERM (certboot-controller lets its Lease go), KILL (throw-away etcd, API server)
keep="${CERTBOOT_TRY_KEEP:-}"
cleanup() {
  local rc=$? i pid n
  trap - EXIT INT TERM
  # A child forked for a background command, signalled before it ran its program, is no cleaner.
  [ "$BASHPID" = "$$" ] || exit "$rc"
  # stderr off while stopping: bash would report each killed job ("Killed ...").
  exec 3>&2 2>/dev/null
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid="${pids[i]}"
    kill "-${signals[i]}" "$pid" 2>/dev/null || true
    for ((n = 0; n < 100; n++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" || true
    wait "$pid" || true
  done
  # A signal between a fork and `pids+=` leaves a child unlisted: stop any child left.
  local pidfile stat ppid
  for pidfile in /proc/[0-9]*/stat; do
    read -r stat <"$pidfile" || continue
    stat="${stat##*) }" # after "pid (comm) ": state, ppid, ...
    read -r _ ppid _ <<<"$stat"
    [ "$ppid" = "$$" ] || continue
    pid="${pidfile//[^0-9]/}"
    kill -TERM "$pid" || continue
    for ((n = 0; n < 50; n++)); do kill -0 "$pid" || break; sleep 0.1; done
    kill -KILL "$pid" || true
    wait "$pid" || true
  done
  exec 2>&3 3>&-
  local done="stopped everything it started"
  [ "${#pids[@]}" -gt 0 ] || done="started nothing"
  if [ -n "$dir" ] && [ -d "$dir" ]; then
    if [ -n "$keep" ] || [ -e "$dir/.failed" ]; then
      done="$done; kept $dir"
    else
      rm -rf "$dir"
      done="$done and removed $dir"
    fi
  fi
  say "$done"
  exit "$rc"
}
trap cleanup EXIT
trap '[ "$BASHPID" = "$$" ] && { echo; say "interrupted"; }; exit 130' INT
trap '[ "$BASHPID" = "$$" ] && say "terminated"; exit 143' TERM

# Prints what failed, the last lines of the component's log, and keeps the directory.
fail() {
  local what="$1" log="${2:-}"
  say "FAILED: $what" >&2
  if [ -n "$log" ] && [ -f "$log" ]; then
    echo "---- last lines of $log:" >&2
    tail -n 25 "$log" >&2
    echo "----" >&2
  fi
  # A marker, not a variable: fail may run in a subshell ($(api ...)).
  [ -n "$dir" ] && touch "$dir/.failed" && say "logs are in $dir/logs (kept; remove the directory when done)" >&2
  exit 1
}

for tool in curl openssl python3; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (needed for the API calls, the CA, JSON)"
done

# ---- binaries ----------------------------------------------------------------------------------

certboot="${CERTBOOT_BIN:-}"
controller="${CERTBOOT_CONTROLLER_BIN:-}"
if [ -z "$certboot" ] || [ -z "$controller" ]; then
  say "building certboot and certboot-controller (cargo build --bins; a few minutes the first time)"
  (cd "$repo" && cargo build --bins --quiet) || fail "cargo build --bins failed (see its output above)"
  target="$(cd "$repo" && cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
  certboot="${certboot:-$target/debug/certboot}"
  controller="${controller:-$target/debug/certboot-controller}"
fi
for bin in "$certboot" "$controller"; do [ -x "$bin" ] || fail "$bin is not an executable"; done

# ---- the control plane's binaries --------------------------------------------------------------

assets="${KUBEBUILDER_ASSETS:-}"
if [ -z "$assets" ]; then
  version="$("$repo/scripts/testenv.sh" versions | awk '$1 == "newest" { print $2 }')"
  if [ ! -x "${TESTENV_CACHE:-$HOME/.cache/certboot-testenv}/$version/kube-apiserver" ]; then
    say "building the control plane $version from source, once (about 25 minutes on 2 cores;"
    say "cached in ~/.cache/certboot-testenv, later runs skip this; needs root for apt-get)"
  fi
  assets="$("$repo/scripts/testenv.sh" newest)" || fail "scripts/testenv.sh newest failed (see above)"
fi
for bin in etcd kube-apiserver; do
  [ -x "$assets/$bin" ] || fail "$assets/$bin is missing (KUBEBUILDER_ASSETS: run scripts/testenv.sh newest)"
done
k8s_version="$("$assets/kube-apiserver" --version 2>&1 | awk '{ print $2 }')"
minor="$(cut -d. -f2 <<<"$k8s_version")"
[ "${minor:-0}" -ge 22 ] 2>/dev/null ||
  fail "kube-apiserver in $assets is '$k8s_version'; the try-out needs 1.22+ (scripts/testenv.sh newest)"

# ---- a directory, keys and certificates --------------------------------------------------------

dir="$(mktemp -d "${TMPDIR:-/tmp}/certboot-try.XXXXXX")"
mkdir -p "$dir"/{pki,logs,etcd,kubeconfigs,ca,certs,controller}
chmod 700 "$dir/etcd"
say "working in $dir"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

quiet_openssl() { openssl "$@" 2>>"$dir/logs/openssl.log" || fail "openssl $1 failed" "$dir/logs/openssl.log"; }
pki="$dir/pki"
# The API server's CA and serving certificate, and the service-account signing key.
quiet_openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj "/CN=certboot try-out API server CA" -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign -keyout "$pki/ca.key" -out "$pki/ca.crt"
quiet_openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj "/CN=kube-apiserver" -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$pki/apiserver.ext"
quiet_openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
  -CAcreateserial -days 1 -extfile "$pki/apiserver.ext" -out "$pki/apiserver.crt"
quiet_openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/sa.key"
quiet_openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
admin_token="$(openssl rand -hex 16)"
printf '%s,try-admin,try-admin,"system:masters"\n' "$admin_token" >"$pki/tokens.csv"
chmod 600 "$pki"/*.key "$pki/tokens.csv"

# The signer's throw-away CA, laid out as the Secret certboot-ca mounts it (kubernetes.io/tls).
ca="$dir/ca"
quiet_openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
  -subj "/CN=certboot try-out CA" -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign -keyout "$ca/tls.key" -out "$ca/tls.crt"
cp "$ca/tls.crt" "$ca/ca.crt"

# ---- etcd and kube-apiserver -------------------------------------------------------------------

# Waits (up to $2 seconds) until command $3... succeeds, while process $1 runs.
wait_for() {
  local pid="$1" seconds="$2" what="$3" log="$4" n
  shift 4
  for ((n = 0; n < seconds * 10; n++)); do
    "$@" && return 0
    kill -0 "$pid" 2>/dev/null || fail "$what: the process exited" "$log"
    sleep 0.1
  done
  fail "$what: not within $seconds s" "$log"
}

etcd_port="$(free_port)"
peer_port="$(free_port)"
say "starting etcd on 127.0.0.1:$etcd_port"
"$assets/etcd" --name=try --data-dir="$dir/etcd" \
  --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
  --listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
  --initial-cluster="try=http://127.0.0.1:$peer_port" --initial-cluster-state=new \
  >"$dir/logs/etcd.log" 2>&1 &
pids+=($!) signals+=(KILL)
etcd_healthy() { curl -s --max-time 1 "http://127.0.0.1:$etcd_port/health" | grep -q '"health":"true"'; }
wait_for "${pids[-1]}" 30 "etcd did not become healthy" "$dir/logs/etcd.log" etcd_healthy

api_port="$(free_port)"
url="https://127.0.0.1:$api_port"
say "starting kube-apiserver $k8s_version on 127.0.0.1:$api_port"
apiserver_flags=(
  --etcd-servers="http://127.0.0.1:$etcd_port" --bind-address=127.0.0.1 --advertise-address=127.0.0.1
  --secure-port="$api_port" --cert-dir="$dir/apiserver-certs"
  --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key"
  --client-ca-file="$pki/ca.crt" --token-auth-file="$pki/tokens.csv" --authorization-mode=RBAC
  --service-cluster-ip-range=10.96.0.0/24
  --service-account-issuer=https://kubernetes.default.svc.cluster.local
  --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key"
  --profiling=false
  # Loopback may not be the `kubernetes` Service's endpoint; nothing here uses that Service.
  --endpoint-reconciler-type=none
)
"$assets/kube-apiserver" "${apiserver_flags[@]}" >"$dir/logs/kube-apiserver.log" 2>&1 &
pids+=($!) signals+=(KILL)
apiserver_pid="${pids[-1]}"

# api METHOD PATH [curl args...]: the response body; fails with the API's message on HTTP >= 400.
api() {
  local method="$1" path="$2" out code
  shift 2
  out="$(curl -sS --max-time 20 -X "$method" --cacert "$pki/ca.crt" -H "Authorization: Bearer $admin_token" \
    -w '\n%{http_code}' "$url$path" "$@" 2>&1)" || fail "$method $path: $out" "$dir/logs/kube-apiserver.log"
  code="${out##*$'\n'}"
  out="${out%$'\n'*}"
  if [ "$code" -ge 400 ]; then
    fail "$method $path: HTTP $code: $(json_get message <<<"$out" 2>/dev/null || echo "$out")" \
      "$dir/logs/kube-apiserver.log"
  fi
  printf '%s' "$out"
}
# json_get a/b/0/c < JSON: that field (strings as-is).
json_get() {
  local out
  out="$(python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("/"):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(v if isinstance(v, str) else json.dumps(v))' "$1" 2>&1)" || fail "no $1 in the API's answer: $out"
  printf '%s\n' "$out"
}
apiserver_ready() {
  [ "$(curl -s --max-time 2 --cacert "$pki/ca.crt" -H "Authorization: Bearer $admin_token" "$url/readyz")" = ok ] &&
    curl -sf --max-time 2 --cacert "$pki/ca.crt" -H "Authorization: Bearer $admin_token" \
      "$url/api/v1/namespaces/default" >/dev/null
}
wait_for "$apiserver_pid" 90 "kube-apiserver did not become ready" "$dir/logs/kube-apiserver.log" apiserver_ready
say "kube-apiserver is ready ($((SECONDS - started)) s so far)"

# ---- manifests, as `kubectl apply -f` would create them ----------------------------------------

# apply FILE: POSTs each YAML document of FILE (the API server reads YAML itself).
apply() {
  local file="$1" n=0 doc kind ns name collection
  local split="$dir/manifests/$(basename "$(dirname "$file")")-$(basename "$file" .yaml)"
  mkdir -p "$split"
  awk -v out="$split/doc" '/^---/ { n++; next } { print > (out "-" n ".yaml") }' "$file"
  for doc in "$split"/doc-*.yaml; do
    kind="$(awk '/^kind:/ { print $2; exit }' "$doc")"
    [ -n "$kind" ] || continue
    ns="$(awk '/^metadata:/ { m = 1; next } m && /^[^ ]/ { m = 0 } m && /^  namespace:/ { print $2; exit }' "$doc")"
    name="$(awk '/^metadata:/ { m = 1; next } m && /^[^ ]/ { m = 0 } m && /^  name:/ { print $2; exit }' "$doc")"
    case "$kind" in
      Namespace) collection=/api/v1/namespaces ;;
      ServiceAccount) collection="/api/v1/namespaces/$ns/serviceaccounts" ;;
      ConfigMap) collection="/api/v1/namespaces/$ns/configmaps" ;;
      Role | RoleBinding) collection="/apis/rbac.authorization.k8s.io/v1/namespaces/$ns/${kind,,}s" ;;
      ClusterRole | ClusterRoleBinding) collection="/apis/rbac.authorization.k8s.io/v1/${kind,,}s" ;;
      *) fail "$file: kind $kind is not one this script applies" ;;
    esac
    api POST "$collection" -H 'Content-Type: application/yaml' --data-binary "@$doc" >/dev/null
    n=$((n + 1))
  done
  say "applied ${file#"$repo"/}: $n object(s)"
}
apply "$repo/manifests/rbac.yaml"
apply "$repo/manifests/approver/namespace.yaml"
apply "$repo/manifests/approver/rbac.yaml"
apply "$repo/manifests/approver/policy.yaml"

# kubeconfig NAME TOKEN: a kubeconfig file holding TOKEN; prints its path.
kubeconfig() {
  local file="$dir/kubeconfigs/$1.yaml"
  (
    umask 077
    cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: try
  cluster: {server: "$url", certificate-authority: "$pki/ca.crt"}
users:
- name: $1
  user: {token: "$2"}
contexts:
- name: try
  context: {cluster: try, user: $1}
current-context: try
EOF
  )
  echo "$file"
}

# ---- the pod, as a kubelet would see it --------------------------------------------------------

pod=web-0
pod_ip=10.244.0.7
api POST /api/v1/namespaces/default/services -H 'Content-Type: application/json' --data-binary '{
  "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
  "spec": {"selector": {"app": "web"}, "ports": [{"port": 443}]}}' >/dev/null
pod_uid="$(api POST /api/v1/namespaces/default/pods -H 'Content-Type: application/json' --data-binary '{
  "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "'"$pod"'", "labels": {"app": "web"}},
  "spec": {"serviceAccountName": "certboot", "automountServiceAccountToken": false,
           "containers": [{"name": "app", "image": "busybox:1.36"}]}}' | json_get metadata/uid)"
api PATCH "/api/v1/namespaces/default/pods/$pod/status" -H 'Content-Type: application/merge-patch+json' \
  --data-binary '{"status": {"phase": "Running", "podIP": "'"$pod_ip"'", "podIPs": [{"ip": "'"$pod_ip"'"}]}}' >/dev/null
pod_token="$(api POST /api/v1/namespaces/default/serviceaccounts/certboot/token -H 'Content-Type: application/json' \
  --data-binary '{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {
    "expirationSeconds": 3600,
    "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "'"$pod"'", "uid": "'"$pod_uid"'"}}}' |
  json_get status/token)"
pod_kubeconfig="$(kubeconfig certboot "$pod_token")"
say "created Service default/web and Pod default/$pod (IP $pod_ip, uid $pod_uid) with a token bound to it"

# ---- certboot-controller: approver and signer --------------------------------------------------

api GET /api/v1/namespaces/certboot-system/configmaps/certboot-policy |
  json_get data/policy.json >"$dir/controller/policy.json"
controller_token="$(api POST /api/v1/namespaces/certboot-system/serviceaccounts/certboot-controller/token \
  -H 'Content-Type: application/json' \
  --data-binary '{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}}' |
  json_get status/token)"
controller_log="$dir/logs/certboot-controller.log"
# The environment of manifests/approver/deployment.yaml (policy and CA as files, as mounted).
env -i KUBECONFIG="$(kubeconfig certboot-controller "$controller_token")" \
  CERTBOOT_POLICY="$dir/controller/policy.json" POD_NAME=certboot-controller-try POD_NAMESPACE=certboot-system \
  CERTBOOT_SIGNER_NAMES=certboot.io/serving CERTBOOT_SIGNER_CA_DIR="$ca" CERTBOOT_TRUST_NAMESPACES=default \
  CERTBOOT_HEALTH_ADDR=127.0.0.1:0 CERTBOOT_LOG=certboot=info,warn \
  "$controller" >"$controller_log" 2>&1 </dev/null &
pids+=($!) signals+=(TERM)
say "starting certboot-controller (approver and signer of certboot.io/serving, a throw-away CA)"
controller_leads() { grep -qs "signing approved CSRs of signer" "$controller_log"; }
wait_for "${pids[-1]}" 60 "certboot-controller did not take the Lease and start" "$controller_log" controller_leads

# ---- certboot, as the pod's init container -----------------------------------------------------

certs="$dir/certs"
certboot_log="$dir/logs/certboot.log"
say "running certboot as pod default/$pod's init container would (env as in README, \"Pod spec\")"
# A pod reads its mounted token; here a kubeconfig holds the same pod-bound token. In the
# background so that Ctrl-C (or SIGTERM) is handled at once.
env -i KUBECONFIG="$pod_kubeconfig" POD_NAME="$pod" POD_NAMESPACE=default POD_UID="$pod_uid" \
  POD_IPS="$pod_ip" CERTBOOT_SIGNER_NAME=certboot.io/serving CERTBOOT_DNS_NAMES=web.default.svc \
  CERTBOOT_TIMEOUT=60s CERTBOOT_CERT_DIR="$certs" CERTBOOT_TERMINATION_LOG=off \
  "$certboot" >"$certboot_log" 2>&1 </dev/null &
pids+=($!) signals+=(TERM)
certboot_rc=0
wait "${pids[-1]}" || certboot_rc=$?
unset 'pids[-1]' 'signals[-1]'
if [ "$certboot_rc" -ne 0 ]; then
  tail -n 25 "$controller_log" >&2
  fail "certboot exited with code $certboot_rc (the controller's log is above)" "$certboot_log"
fi

csr_name="default:$pod:${pod_uid:0:6}"
approved="$(api GET "/apis/certificates.k8s.io/v1/certificatesigningrequests/$csr_name" |
  python3 -c 'import json, sys
c = [c for c in json.load(sys.stdin)["status"]["conditions"] if c["type"] == "Approved"][0]
print(c["reason"] + ": " + c["message"])')"
say "certboot-controller approved and signed CSR $csr_name ($approved)"
say "certboot wrote cert.pem and key.pem, $((SECONDS - started)) s after the start. The certificate:"
echo
openssl x509 -in "$certs/cert.pem" -noout -subject -issuer -dates -ext subjectAltName,extendedKeyUsage |
  sed 's/^/    /'
openssl verify -CAfile "$ca/ca.crt" "$certs/cert.pem" | sed 's/^/    verify: /'
echo
say "files (what the pod's certs volume holds, then the rest):"
for f in "$certs"/*.pem; do
  printf '    %s  %s\n' "$(stat -L -c %A "$f")" "$f"
done
printf '    %s\n' "$ca/ (the CA: tls.crt, tls.key, ca.crt)" "$dir/logs/ (etcd, kube-apiserver, certboot-controller, certboot)"
[ -n "$keep" ] || say "(CERTBOOT_TRY_KEEP=1 keeps them)"
