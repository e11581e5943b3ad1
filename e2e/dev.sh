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
export KUBECONFIG="$dir/admin.kubeconfig"
kubectl apply -k "$repo/config/default" >/dev/null
kubectl wait --for=condition=Established crd/controlownerships.steward.dev crd/policyexceptions.steward.dev --timeout=30s >/dev/null
kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns" >/dev/null
kubectl apply -n "$ns" -f "$repo/config/samples/"
cat <<MSG

  Control plane ready. In another shell:
    export KUBECONFIG=$dir/admin.kubeconfig
    kubectl get steward -A

  Controller (as system:serviceaccount:steward-system:steward) runs below; Ctrl-C stops all.

MSG
KUBECONFIG="$dir/controller.kubeconfig" "$repo/target/debug/steward" run --metrics-addr 127.0.0.1:8080
