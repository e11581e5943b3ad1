#!/usr/bin/env bash
# Runs the Argo CD health checks with a real Lua interpreter (Debian's
# lua5.4) against every fixture in health_test.yaml, and checks that the
# argocd-cm patch carries exactly the .lua files.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
command -v lua5.4 >/dev/null || { echo "lua5.4 is not installed (apt-get install lua5.4)" >&2; exit 2; }
py=python3
$py -c 'import yaml' 2>/dev/null || py=/usr/bin/python3   # Debian's, with python3-yaml
exec "$py" - "$here" <<'PY'
import json, subprocess, sys, yaml
here = sys.argv[1]
scripts = {"ControlOwnership": f"{here}/controlownership-health.lua",
           "PolicyException": f"{here}/policyexception-health.lua"}

def lua(v):
    if v is None: return "nil"
    if isinstance(v, bool): return "true" if v else "false"
    if isinstance(v, (int, float)): return repr(v)
    if isinstance(v, str): return json.dumps(v)  # JSON string escapes are valid Lua
    if isinstance(v, list): return "{" + ", ".join(lua(x) for x in v) + "}"
    return "{" + ", ".join(f"[{json.dumps(k)}] = {lua(x)}" for k, x in v.items()) + "}"

passed = failed = 0
for t in yaml.safe_load(open(f"{here}/health_test.yaml"))["tests"]:
    obj = yaml.safe_load(open(f"{here}/{t['inputPath']}"))
    program = f"obj = {lua(obj)}\nlocal hs = dofile({json.dumps(scripts[obj['kind']])})\nio.write(hs.status, '\\n', hs.message or '')"
    out = subprocess.run(["lua5.4", "-"], input=program, capture_output=True, text=True)
    got = out.stdout.split("\n", 1) + [""]
    want = t["healthStatus"]
    if out.returncode == 0 and got[0] == want["status"] and got[1] == want.get("message", ""):
        passed += 1
        print(f"ok   {t['inputPath']}: {got[0]}")
    else:
        failed += 1
        print(f"FAIL {t['inputPath']}: want {want}, got {got[:2]} {out.stderr.strip()}")

patch = yaml.safe_load(open(f"{here}/argocd-cm-patch.yaml"))["data"]
for kind, path in scripts.items():
    key = f"resource.customizations.health.steward.dev_{kind}"
    if patch.get(key) == open(path).read():
        passed += 1
        print(f"ok   argocd-cm {key} equals {path.rsplit('/', 1)[1]}")
    else:
        failed += 1
        print(f"FAIL argocd-cm {key} differs from {path.rsplit('/', 1)[1]}")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
