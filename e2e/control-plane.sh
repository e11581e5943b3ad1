#!/usr/bin/env bash
# The local control plane of SPEC §5: etcd plus kube-apiserver, and the
# kubectl of the same release, built from their Go modules with the
# machine's Go toolchain and cached outside the repo, keyed by version.
#
#   control-plane.sh install      install packages, build and cache the binaries
#   control-plane.sh start DIR    start etcd + kube-apiserver on free loopback ports;
#                                 DIR gets admin.kubeconfig, controller.kubeconfig, env;
#                                 the API server calls webhooks with the client
#                                 certificate pki/webhook-client.crt (CA: pki/webhook-client-ca.crt)
#   control-plane.sh stop DIR     SIGTERM, then SIGKILL after a timeout
#   control-plane.sh restart DIR [etcd|moved]
#                                 stop and start kube-apiserver (and etcd) again on
#                                 the same ports and data; returns once it is ready;
#                                 with "moved", one write straight to etcd while the
#                                 API server is down, and a compaction to it, move
#                                 etcd's history past every watcher's, so every
#                                 resumed watch gets 410 Gone
#
# STEWARD_ETCD_COMPACTION_INTERVAL (at start; default 5m, the API server's
# own) sets --etcd-compaction-interval.
#   control-plane.sh version      the full Kubernetes version selected
#   control-plane.sh bindir       where kube-apiserver and kubectl of that version live
#
# KUBERNETES selects the minor release (default 1.37, the newest supported;
# 1.33 is the oldest). Each release is a Go module of its own under
# e2e/platform/kubernetes-<minor>, pinning k8s.io/kubernetes and its staging
# modules; etcd is e2e/platform/etcd. Several instances can run at once:
# each has its own DIR and ports.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
KUBERNETES="${KUBERNETES:-1.37}"
PLATFORM="$HERE/platform"
K8S_MODULE="$PLATFORM/kubernetes-$KUBERNETES"
ETCD_MODULE="$PLATFORM/etcd"
CACHE="${STEWARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/steward}"
# Bump BUILD_REV whenever the build recipe changes, so caches are rebuilt.
BUILD_REV=1
# The controller's identity: a service-account user name, so RBAC bindings to
# the ServiceAccount steward-system/steward apply to it, but NOT system:masters.
CONTROLLER_USER="system:serviceaccount:steward-system:steward"

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

log() { printf 'control-plane: %s\n' "$*" >&2; }

[ -f "$K8S_MODULE/go.mod" ] || {
  log "KUBERNETES=$KUBERNETES is not supported (have: $(cd "$PLATFORM" && ls -d kubernetes-* | sed 's/kubernetes-//' | tr '\n' ' '))"
  exit 2
}

# The version a module pins, read from its go.mod (require line).
module_version() { # go.mod module-path
  awk -v m="$2" '$1 == m && $2 ~ /^v/ {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$1"
}
K8S_VERSION="$(module_version "$K8S_MODULE/go.mod" k8s.io/kubernetes)"
ETCD_VERSION="$(module_version "$ETCD_MODULE/go.mod" go.etcd.io/etcd/server/v3)"
[ -n "$K8S_VERSION" ] && [ -n "$ETCD_VERSION" ] || {
  log "cannot read the pinned versions from $K8S_MODULE/go.mod and $ETCD_MODULE/go.mod"; exit 1; }
BIN="$CACHE/kubernetes-$K8S_VERSION-r$BUILD_REV"
ETCD_BIN="$CACHE/etcd-$ETCD_VERSION-r$BUILD_REV"
APISERVER="$BIN/kube-apiserver"
KUBECTL="$BIN/kubectl"
ETCD="$ETCD_BIN/etcd"

install_packages() {
  # openssl: the test PKI; curl: readiness probe. (The Argo CD health checks
  # run under gopher-lua in e2e/conformance; promtool is installed by
  # config/prometheus/test.sh.)
  local pkgs=(openssl curl)
  local missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  command -v go >/dev/null || { log "go is not installed (need Go >= 1.26)"; exit 1; }
}

# The -X flags Kubernetes' own build (hack/lib/version.sh) stamps, so
# `kube-apiserver --version` and `kubectl version` print the real version.
version_ldflags() { # vX.Y.Z
  local v="$1" minor; minor="$(echo "$v" | cut -d. -f2)"
  local out="" pkg
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    out+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
    out+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$out"
}

# Builds into a temporary directory and renames it into place, so an
# interrupted build never leaves a half-filled cache entry; if another build
# of the same version finished first, ours is discarded.
build_into() { # dest-dir module-dir ldflags packages...
  local dest="$1" module="$2" ldflags="$3"; shift 3
  [ -d "$dest" ] && return 0
  mkdir -p "$CACHE"
  local tmp; tmp="$(mktemp -d "$CACHE/build.XXXXXX")"
  trap "rm -rf '$tmp'" EXIT
  (cd "$module" && go build -trimpath -ldflags "-s -w $ldflags" -o "$tmp/" "$@") || {
    log "build failed in $module"; exit 1; }
  # go names etcd's main package (go.etcd.io/etcd/server/v3) "server".
  if [ -f "$tmp/server" ]; then mv "$tmp/server" "$tmp/etcd"; fi
  chmod 755 "$tmp"
  mv -T "$tmp" "$dest" 2>/dev/null || [ -d "$dest" ]
  trap - EXIT
  rm -rf "$tmp"
}

build() {
  if [ ! -d "$BIN" ]; then
    log "building kube-apiserver and kubectl $K8S_VERSION into $BIN (about 8 to 9 minutes on 2 cores, once)"
    build_into "$BIN" "$K8S_MODULE" "$(version_ldflags "$K8S_VERSION")" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
  fi
  if [ ! -d "$ETCD_BIN" ]; then
    log "building etcd $ETCD_VERSION into $ETCD_BIN (under a minute, once)"
    build_into "$ETCD_BIN" "$ETCD_MODULE" "" go.etcd.io/etcd/server/v3
  fi
  log "$("$APISERVER" --version), kubectl $K8S_VERSION, etcd $ETCD_VERSION in $CACHE"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_ready() { # url token timeout_s pid
  local deadline=$((SECONDS + $3))
  while [ $SECONDS -lt $deadline ]; do
    kill -0 "$4" 2>/dev/null || return 1
    if curl -skf -H "Authorization: Bearer $2" "$1/readyz" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  return 1
}

kubeconfig() { # file server token user
  cat > "$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: steward-local
  cluster: {server: "$2", certificate-authority: "$DIR/pki/ca.crt"}
users:
- name: $4
  user: {token: "$3"}
contexts:
- name: steward-local
  context: {cluster: steward-local, user: $4}
current-context: steward-local
KC
}

run_etcd() { # in $DIR, with the ports of $DIR/ports
  # shellcheck disable=SC1091
  . "$DIR/ports"
  "$ETCD" --data-dir "$DIR/etcd" --name local \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "local=http://127.0.0.1:$peer_port" \
    --listen-metrics-urls "" \
    --unsafe-no-fsync >>"$DIR/etcd.log" 2>&1 &
  echo $! > "$DIR/etcd.pid"
}

run_apiserver() { # in $DIR, with the ports of $DIR/ports
  # shellcheck disable=SC1091
  . "$DIR/ports"
  # --audit-log-maxsize: never rotate (the log writer's default rotates at
  # 100 MB, and the tests and the bench read audit.log from where they
  # stopped). --etcd-compaction-interval: how often the API server compacts etcd
  # (STEWARD_ETCD_COMPACTION_INTERVAL at start; tests lower it so resumed
  # watches get 410 Gone). STEWARD_APISERVER_PROFILING=true serves
  # /debug/pprof (the status-cost bench's profiles).
  "$APISERVER" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --etcd-compaction-interval "$compaction" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --tls-cert-file "$DIR/pki/serving.crt" --tls-private-key-file "$DIR/pki/serving.key" \
    --token-auth-file "$DIR/pki/tokens.csv" \
    --authorization-mode RBAC \
    --admission-control-config-file "$DIR/pki/admission.yaml" \
    --service-account-key-file "$DIR/pki/sa.pub" \
    --service-account-signing-key-file "$DIR/pki/sa.key" \
    --service-account-issuer "https://127.0.0.1:$api_port" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --endpoint-reconciler-type none \
    --audit-log-path "$DIR/audit.log" --audit-policy-file "$HERE/audit-policy.yaml" \
    --audit-log-maxsize 1000000 \
    --audit-log-mode blocking \
    --enable-priority-and-fairness=false \
    --max-requests-inflight 2000 --max-mutating-requests-inflight 1000 \
    --profiling="${STEWARD_APISERVER_PROFILING:-false}" >>"$DIR/apiserver.log" 2>&1 &
  echo $! > "$DIR/apiserver.pid"
}

# Stops the API server (and etcd with "etcd") of a running control plane
# and starts them again on the same ports, data and certificates; returns
# once the API server is ready again. "moved": while the API server is
# down, one write to etcd outside /registry (through etcd's JSON gateway)
# moves the revision past the one the API server last told its watchers
# (bookmarks keep them near the latest), and a compaction to it removes
# the history before it: each resumed watch is answered 410 Gone, whether
# the restarted watch cache or etcd serves it, and relists, without
# depending on timing.
restart() { # dir [etcd|moved]
  DIR="$(cd "$1" && pwd)"
  stop_pid "$DIR/apiserver.pid"
  if [ "${2:-}" = etcd ]; then
    stop_pid "$DIR/etcd.pid"
    run_etcd
  fi
  if [ "${2:-}" = moved ]; then
    # shellcheck disable=SC1091
    . "$DIR/ports"
    # key "steward-e2e/moved", value "1", base64 as the gateway wants; then
    # compact to that revision, so a watch resumed from before it finds
    # its history gone whether the cache or etcd serves it.
    local put revision
    put=$(curl -fsS -X POST "http://127.0.0.1:$etcd_port/v3/kv/put" \
      -d '{"key": "c3Rld2FyZC1lMmUvbW92ZWQ=", "value": "MQ=="}')
    revision=$(printf '%s' "$put" | grep -o '"revision":"[0-9]*"' | grep -o '[0-9]*' || true)
    [ -n "$revision" ] || { log "etcd's answer to the put held no revision: $put"; exit 1; }
    curl -fsS -X POST "http://127.0.0.1:$etcd_port/v3/kv/compaction" \
      -d "{\"revision\": \"$revision\", \"physical\": true}" >/dev/null
  fi
  run_apiserver
  local token
  token=$(grep ',steward-admin,' "$DIR/pki/tokens.csv" | cut -d, -f1)
  . "$DIR/ports"
  if ! wait_ready "https://127.0.0.1:$api_port" "$token" 90 "$(cat "$DIR/apiserver.pid")"; then
    log "kube-apiserver did not come back; last log lines:"; tail -20 "$DIR/apiserver.log" >&2
    exit 1
  fi
}

start() {
  DIR="$(mkdir -p "$1" && cd "$1" && pwd)"
  [ -x "$APISERVER" ] && [ -x "$ETCD" ] || { log "Kubernetes $K8S_VERSION not built: run 'KUBERNETES=$KUBERNETES $0 install'"; exit 1; }
  mkdir -p "$DIR/pki" "$DIR/etcd"
  local etcd_port peer_port api_port
  etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port)
  # A CA and a serving certificate for 127.0.0.1 signed by it (rustls
  # refuses a self-signed CA certificate used as the server's own).
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=steward-local-ca" \
    -keyout "$DIR/pki/ca.key" -out "$DIR/pki/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$DIR/pki/serving.key" -out "$DIR/pki/serving.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$DIR/pki/serving.ext"
  openssl x509 -req -in "$DIR/pki/serving.csr" -CA "$DIR/pki/ca.crt" -CAkey "$DIR/pki/ca.key" -CAcreateserial \
    -days 30 -extfile "$DIR/pki/serving.ext" -out "$DIR/pki/serving.crt" 2>/dev/null
  # The admission webhooks' caller: the API server presents this client
  # certificate (signed by a CA of its own, which the test webhook trusts
  # with --webhook-client-ca) to every webhook, through the
  # AdmissionConfiguration below.
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=webhook-client-ca" \
    -keyout "$DIR/pki/webhook-client-ca.key" -out "$DIR/pki/webhook-client-ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$DIR/pki/webhook-client.key" -out "$DIR/pki/webhook-client.csr" 2>/dev/null
  printf 'subjectAltName=DNS:kube-apiserver\nbasicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' > "$DIR/pki/webhook-client.ext"
  openssl x509 -req -in "$DIR/pki/webhook-client.csr" -CA "$DIR/pki/webhook-client-ca.crt" \
    -CAkey "$DIR/pki/webhook-client-ca.key" -CAcreateserial -days 30 \
    -extfile "$DIR/pki/webhook-client.ext" -out "$DIR/pki/webhook-client.crt" 2>/dev/null
  cat > "$DIR/pki/webhook-client.kubeconfig" <<KC
apiVersion: v1
kind: Config
users:
- name: "*"
  user: {client-certificate: "$DIR/pki/webhook-client.crt", client-key: "$DIR/pki/webhook-client.key"}
KC
  cat > "$DIR/pki/admission.yaml" <<ADM
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: ValidatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: "$DIR/pki/webhook-client.kubeconfig"
- name: MutatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: "$DIR/pki/webhook-client.kubeconfig"
ADM
  openssl genrsa -out "$DIR/pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$DIR/pki/sa.key" -pubout -out "$DIR/pki/sa.pub" 2>/dev/null
  local admin_token controller_token
  admin_token=$(openssl rand -hex 24); controller_token=$(openssl rand -hex 24)
  cat > "$DIR/pki/tokens.csv" <<TOK
$admin_token,steward-admin,steward-admin,"system:masters"
$controller_token,$CONTROLLER_USER,steward-controller,"system:serviceaccounts,system:serviceaccounts:steward-system"
TOK
  # Ports and settings a restart reuses (restart below).
  cat > "$DIR/ports" <<PORTS
etcd_port=$etcd_port
peer_port=$peer_port
api_port=$api_port
compaction=${STEWARD_ETCD_COMPACTION_INTERVAL:-5m}
PORTS
  run_etcd
  run_apiserver
  local server="https://127.0.0.1:$api_port"
  if ! wait_ready "$server" "$admin_token" 90 "$(cat "$DIR/apiserver.pid")"; then
    log "kube-apiserver did not become ready; last log lines:"; tail -20 "$DIR/apiserver.log" >&2
    stop "$DIR"; exit 1
  fi
  kubeconfig "$DIR/admin.kubeconfig" "$server" "$admin_token" steward-admin
  kubeconfig "$DIR/controller.kubeconfig" "$server" "$controller_token" steward-controller
  cat > "$DIR/env" <<ENV
SERVER=$server
KUBERNETES_VERSION=$K8S_VERSION
KUBECTL=$KUBECTL
ADMIN_KUBECONFIG=$DIR/admin.kubeconfig
CONTROLLER_KUBECONFIG=$DIR/controller.kubeconfig
CONTROLLER_USER=$CONTROLLER_USER
AUDIT_LOG=$DIR/audit.log
WEBHOOK_CLIENT_CA=$DIR/pki/webhook-client-ca.crt
WEBHOOK_CLIENT_CERT=$DIR/pki/webhook-client.crt
WEBHOOK_CLIENT_KEY=$DIR/pki/webhook-client.key
ENV
  log "kube-apiserver $K8S_VERSION ready at $server (admin: $DIR/admin.kubeconfig)"
}

stop_pid() { # pidfile
  [ -f "$1" ] || return 0
  local pid; pid=$(cat "$1")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}

stop() {
  local dir="$1"
  stop_pid "$dir/apiserver.pid"
  stop_pid "$dir/etcd.pid"
}

case "${1:-}" in
  install) install_packages; build ;;
  start) [ $# -eq 2 ] || { echo "usage: $0 start DIR" >&2; exit 2; }; start "$2" ;;
  stop) [ $# -eq 2 ] || { echo "usage: $0 stop DIR" >&2; exit 2; }; stop "$2" ;;
  restart) [ $# -ge 2 ] || { echo "usage: $0 restart DIR [etcd|moved]" >&2; exit 2; }; restart "$2" "${3:-}" ;;
  version) echo "$K8S_VERSION" ;;
  bindir) echo "$BIN" ;;
  *) echo "usage: $0 install | start DIR | stop DIR | version | bindir" >&2; exit 2 ;;
esac
