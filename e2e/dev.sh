#!/usr/bin/env bash
# `make dev`: control plane up, config/default applied, the controller
# running as its own identity and serving the approvals webhook (registered
# as config/webhook does, on loopback), the samples applied and the sample
# exception approved by alice. Ctrl-C stops all.
set -euo pipefail
dir="$1"; ns="$2"
here="$(cd "$(dirname "$0")" && pwd)"; repo="$(dirname "$here")"
if [ -f "$dir/apiserver.pid" ] && kill -0 "$(cat "$dir/apiserver.pid")" 2>/dev/null; then
  echo "dev: reusing the control plane in $dir" >&2
else
  rm -rf "$dir"
  bash "$here/control-plane.sh" start "$dir"
fi
controller=""
cleanup() {
  [ -n "$controller" ] && kill "$controller" 2>/dev/null || true
  bash "$here/control-plane.sh" stop "$dir"
}
trap cleanup EXIT
# shellcheck disable=SC1091
. "$dir/env"
export KUBECONFIG="$dir/admin.kubeconfig"
"$KUBECTL" apply -k "$repo/config/default" >/dev/null
"$KUBECTL" wait --for=condition=Established crd/controlownerships.steward.dev crd/policyexceptions.steward.dev --timeout=30s >/dev/null
"$KUBECTL" get namespace "$ns" >/dev/null 2>&1 || "$KUBECTL" create namespace "$ns" >/dev/null

# The webhook's serving certificate, for 127.0.0.1.
pki="$dir/dev-webhook"
if [ ! -f "$pki/webhook.crt" ]; then
  mkdir -p "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=steward-dev-webhook-ca \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$pki/webhook.key" -out "$pki/webhook.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$pki/ext"
  openssl x509 -req -in "$pki/webhook.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 30 -extfile "$pki/ext" -out "$pki/webhook.crt" 2>/dev/null
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')

KUBECONFIG="$dir/controller.kubeconfig" "$repo/target/debug/steward" run --metrics-addr 127.0.0.1:8080 \
  --webhook-addr "127.0.0.1:$port" --webhook-cert "$pki/webhook.crt" --webhook-key "$pki/webhook.key" \
  --webhook-client-ca "$dir/pki/webhook-client-ca.crt" --webhook-client-name kube-apiserver &
controller=$!
for _ in $(seq 1 300); do
  curl -sf http://127.0.0.1:8080/readyz >/dev/null 2>&1 && break
  kill -0 "$controller" 2>/dev/null || { echo "dev: the controller exited" >&2; exit 1; }
  sleep 0.2
done
# The shipped mutating webhook, pointed at the controller on loopback.
python3 - "$repo/config/webhook/mutating_webhook.yaml" "https://127.0.0.1:$port/mutate" "$pki/ca.crt" <<'PY' | "$KUBECTL" apply -f - >/dev/null
import base64, re, sys
text = open(sys.argv[1]).read()
ca = base64.b64encode(open(sys.argv[3], "rb").read()).decode()
text = re.sub(r"(?m)^  annotations:\n    cert-manager.io/inject-ca-from: .*\n", "", text)
text = re.sub(r"service: \{[^}]*\}", 'url: "%s"\n      caBundle: "%s"' % (sys.argv[2], ca), text)
print(text)
PY
# The samples include grant-ceiling-binding.yaml: as the platform team
# would, the admin opts the demo namespace in (the controller holds the
# grant ceiling only where it is bound). Retried until the API server
# calls the webhook it just learnt of.
for _ in $(seq 1 50); do
  "$KUBECTL" apply -n "$ns" -f "$repo/config/samples/" >/dev/null 2>&1 && break
  sleep 0.2
done
"$KUBECTL" apply -n "$ns" -f "$repo/config/samples/" >/dev/null
# alice approves the sample exception as herself.
"$KUBECTL" create rolebinding sample-approvers -n "$ns" --clusterrole=steward-approver \
  --user=alice@example.com --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
"$KUBECTL" annotate --overwrite -n "$ns" policyexception payments-debug \
  steward.dev/approve=alice@example.com --as=alice@example.com >/dev/null
server_version="$("$KUBECTL" version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')"
cat <<MSG

  Control plane ready: kube-apiserver $server_version at $SERVER. In another shell:
    export KUBECONFIG=$dir/admin.kubeconfig PATH=$(dirname "$KUBECTL"):\$PATH
    kubectl get steward -A

  Controller (as $CONTROLLER_USER) runs below, serving the approvals
  webhook; the sample exception was approved by alice@example.com.
  Ctrl-C stops all.

MSG
wait "$controller"
