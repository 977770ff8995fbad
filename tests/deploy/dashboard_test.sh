#!/usr/bin/env bash
# Grafana dashboard: structure (unique ids, no overlapping panels, datasource variable, known
# metric names), and every query parses as PromQL (`promtool check rules` on the queries
# turned into recording rules, Grafana's $__rate_interval replaced).
#   dashboard_test.sh VALIDATOR_DIR REPO_ROOT
set -euo pipefail
validator=$1 root=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
node "$validator/validate.mjs" dashboard "$root/deploy/grafana/tpdiff-dashboard.json" >"$tmp/queries.yaml"
promtool check rules "$tmp/queries.yaml"
# The provisioning file is valid YAML naming the folder the docs tell users to copy to.
grep -q 'path: /var/lib/grafana/dashboards/tpdiff' "$root/deploy/grafana/provisioning.yaml"
