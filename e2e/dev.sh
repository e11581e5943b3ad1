#!/usr/bin/env bash
# `make dev`: control plane up, config/default and samples applied, the
# controller running in the foreground as its own identity.
set -euo pipefail
dir="$1"; ns="$2"
here="$(cd "$(dirname "$0")" && pwd)"; repo="$(dirname "$here")"
if [ -f "$dir/apiserver.pid" ] && kill -0 "$(cat "$dir/apiserver.pid")" 2>/dev/null; then
  echo "dev: reusing the control plane in $dir" >&2
else
  rm -rf "$dir"
  bash "$here/control-plane.sh" start "$dir"
fi
trap 'bash "$here/control-plane.sh" stop "$dir"' EXIT
# shellcheck disable=SC1091
. "$dir/env"
export KUBECONFIG="$dir/admin.kubeconfig"
"$KUBECTL" apply -k "$repo/config/default" >/dev/null
"$KUBECTL" wait --for=condition=Established crd/controlownerships.steward.dev crd/policyexceptions.steward.dev --timeout=30s >/dev/null
"$KUBECTL" get namespace "$ns" >/dev/null 2>&1 || "$KUBECTL" create namespace "$ns" >/dev/null
# The samples include grant-ceiling-binding.yaml: as the platform team
# would, the admin opts the demo namespace in (the controller holds the
# grant ceiling only where it is bound).
"$KUBECTL" apply -n "$ns" -f "$repo/config/samples/"
server_version="$("$KUBECTL" version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')"
cat <<MSG

  Control plane ready: kube-apiserver $server_version at $SERVER. In another shell:
    export KUBECONFIG=$dir/admin.kubeconfig PATH=$(dirname "$KUBECTL"):\$PATH
    kubectl get steward -A

  Controller (as $CONTROLLER_USER) runs below; Ctrl-C stops all.

MSG
KUBECONFIG="$dir/controller.kubeconfig" "$repo/target/debug/steward" run --metrics-addr 127.0.0.1:8080
