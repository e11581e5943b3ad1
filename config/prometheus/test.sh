#!/usr/bin/env bash
# Unit-tests the alerts with promtool (from Debian's prometheus package,
# installed when missing): the rule file is valid and every alert fires
# exactly when rules_test.yaml says.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v promtool >/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
promtool check rules rules.yaml
promtool test rules rules_test.yaml
