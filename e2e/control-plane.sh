#!/usr/bin/env bash
# The local control plane of SPEC §5: etcd (Debian's etcd-server) plus
# kube-apiserver v1.20.2 built once from Debian's `kubernetes` source package.
#
#   control-plane.sh install      install packages, build and cache kube-apiserver
#   control-plane.sh start DIR    start etcd + kube-apiserver on free loopback ports;
#                                 DIR gets admin.kubeconfig, controller.kubeconfig, env
#   control-plane.sh stop DIR     SIGTERM, then SIGKILL after a timeout
#
# Several instances can run at once: each has its own DIR and ports.
set -euo pipefail

CACHE="${STEWARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/steward}"
# Bump BUILD_REV whenever the build recipe changes, so caches are rebuilt.
BUILD_REV=2
APISERVER="${STEWARD_KUBE_APISERVER:-$CACHE/kube-apiserver-v1.20.2-r$BUILD_REV/kube-apiserver}"
# The controller's identity: a service-account user name, so RBAC bindings to
# the ServiceAccount steward-system/steward apply to it, but NOT system:masters.
CONTROLLER_USER="system:serviceaccount:steward-system:steward"

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

log() { printf 'control-plane: %s\n' "$*" >&2; }

install_packages() {
  local pkgs=(etcd-server golang-go rsync jq dpkg-dev openssl curl lua5.4 python3-yaml
    golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev)
  local missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

build_apiserver() {
  if [ -x "$APISERVER" ]; then return 0; fi
  log "building kube-apiserver v1.20.2 into $CACHE (about 8 minutes, once)"
  mkdir -p "$CACHE"
  local work; work="$(mktemp -d "$CACHE/build.XXXXXX")"
  # A private deb-src list, so the machine's apt configuration is untouched.
  mkdir -p "$work/apt/lists/partial"
  echo "deb-src http://deb.debian.org/debian bookworm main" > "$work/apt/sources.list"
  local aptopts=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$work/apt/lists")
  apt-get "${aptopts[@]}" update -qq
  (cd "$work" && apt-get "${aptopts[@]}" source --download-only -qq kubernetes >/dev/null \
     && dpkg-source --no-check -x ./kubernetes_*.dsc src >/dev/null)
  local src="$work/src"
  # Go >= 1.18 crashes the vendored reflect2 v1.0.1 on the first custom
  # resource write; Debian's reflect2 1.0.2 and json-iterator 1.1.12 fix it.
  rm -rf "$src/vendor/github.com/modern-go/reflect2" "$src/vendor/github.com/json-iterator/go"
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$src/vendor/github.com/modern-go/reflect2"
  cp -r /usr/share/gocode/src/github.com/json-iterator/go "$src/vendor/github.com/json-iterator/go"
  # With Go >= 1.18, reflect.DeepEqual(reflect.Zero(T), reflect.ValueOf(v))
  # is true for "", 0 and false, so the OpenAPI validator takes every empty
  # string in a custom resource for null and refuses it (apiGroups: [""]).
  # Only a real nil is null.
  local zero_check='data == nil || reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data))'
  for f in "$src/vendor/k8s.io/kube-openapi/pkg/validation/validate/type.go" \
           "$src/vendor/github.com/go-openapi/validate/type.go"; do
    grep -qF "$zero_check" "$f" || { log "expected zero-value check not found in $f"; exit 1; }
    sed -i "s/$zero_check/data == nil/" "$f"
  done
  (cd "$src" && GOFLAGS=-mod=vendor GOTOOLCHAIN=local make WHAT=cmd/kube-apiserver >"$work/build.log" 2>&1) || {
    tail -40 "$work/build.log" >&2; exit 1; }
  mkdir -p "$(dirname "$APISERVER")"
  cp "$(find "$src/_output" -type f -name kube-apiserver | head -1)" "$APISERVER.tmp"
  mv "$APISERVER.tmp" "$APISERVER"
  rm -rf "$work"
  log "kube-apiserver cached at $APISERVER"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_ready() { # url token timeout_s
  local deadline=$((SECONDS + $3))
  while [ $SECONDS -lt $deadline ]; do
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

start() {
  DIR="$(mkdir -p "$1" && cd "$1" && pwd)"
  [ -x "$APISERVER" ] || { log "kube-apiserver not built: run '$0 install'"; exit 1; }
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
  openssl genrsa -out "$DIR/pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$DIR/pki/sa.key" -pubout -out "$DIR/pki/sa.pub" 2>/dev/null
  local admin_token controller_token
  admin_token=$(openssl rand -hex 24); controller_token=$(openssl rand -hex 24)
  cat > "$DIR/pki/tokens.csv" <<TOK
$admin_token,steward-admin,steward-admin,"system:masters"
$controller_token,$CONTROLLER_USER,steward-controller,"system:serviceaccounts,system:serviceaccounts:steward-system"
TOK
  etcd --data-dir "$DIR/etcd" --name local \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "local=http://127.0.0.1:$peer_port" \
    --unsafe-no-fsync >"$DIR/etcd.log" 2>&1 &
  echo $! > "$DIR/etcd.pid"
  "$APISERVER" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --tls-cert-file "$DIR/pki/serving.crt" --tls-private-key-file "$DIR/pki/serving.key" \
    --token-auth-file "$DIR/pki/tokens.csv" \
    --authorization-mode RBAC \
    --service-account-key-file "$DIR/pki/sa.pub" \
    --service-account-signing-key-file "$DIR/pki/sa.key" \
    --service-account-issuer "https://127.0.0.1:$api_port" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --audit-log-path "$DIR/audit.log" --audit-policy-file "$(dirname "$0")/audit-policy.yaml" \
    --audit-log-mode blocking \
    --enable-priority-and-fairness=false \
    --max-requests-inflight 2000 --max-mutating-requests-inflight 1000 \
    --profiling=false >"$DIR/apiserver.log" 2>&1 &
  echo $! > "$DIR/apiserver.pid"
  local server="https://127.0.0.1:$api_port"
  if ! wait_ready "$server" "$admin_token" 90; then
    log "kube-apiserver did not become ready; last log lines:"; tail -20 "$DIR/apiserver.log" >&2
    stop "$DIR"; exit 1
  fi
  kubeconfig "$DIR/admin.kubeconfig" "$server" "$admin_token" steward-admin
  kubeconfig "$DIR/controller.kubeconfig" "$server" "$controller_token" steward-controller
  cat > "$DIR/env" <<ENV
SERVER=$server
ADMIN_KUBECONFIG=$DIR/admin.kubeconfig
CONTROLLER_KUBECONFIG=$DIR/controller.kubeconfig
CONTROLLER_USER=$CONTROLLER_USER
AUDIT_LOG=$DIR/audit.log
ENV
  log "ready at $server (admin: $DIR/admin.kubeconfig)"
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
  install) install_packages; build_apiserver ;;
  start) [ $# -eq 2 ] || { echo "usage: $0 start DIR" >&2; exit 2; }; start "$2" ;;
  stop) [ $# -eq 2 ] || { echo "usage: $0 stop DIR" >&2; exit 2; }; stop "$2" ;;
  *) echo "usage: $0 install | start DIR | stop DIR" >&2; exit 2 ;;
esac
