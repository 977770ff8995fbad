#!/usr/bin/env bash
# Alert rules: extracts the PrometheusRule of the rendered gpu overlay (the single source of
# the rules), then `promtool check rules` and `promtool test rules` (rules_test.yaml), and
# checks that every alert has at least one unit test.
#   rules_test.sh VALIDATOR_DIR REPO_ROOT
set -euo pipefail
validator=$1 root=$2
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$here/require_kustomize_v5.sh"
kubectl kustomize "$root/deploy/k8s/overlays/gpu" >"$tmp/rendered.yaml" 2>/dev/null
node "$validator/validate.mjs" extract-rules "$tmp/rendered.yaml" >"$tmp/tpdiff-rules.yaml"
cp "$here/rules_test.yaml" "$tmp/"
promtool check rules "$tmp/tpdiff-rules.yaml"
(cd "$tmp" && promtool test rules rules_test.yaml)
missing=0
for alert in $(sed -n 's/^ *- alert: *//p' "$tmp/tpdiff-rules.yaml"); do
  if ! grep -q "alertname: $alert\$" "$here/rules_test.yaml"; then
    echo "alert $alert has no test in rules_test.yaml" >&2
    missing=1
  fi
done
exit $missing
