#!/usr/bin/env bash
# Renders one kustomization with `kubectl kustomize` and checks it offline: API schemas and
# cross-references (tests/deploy/validator/validate.mjs).
#   check_manifests.sh VALIDATOR_DIR KUSTOMIZATION_DIR [--expect-fail REGEX]
# With --expect-fail the check must fail and its report must match REGEX: that is how the
# fixtures in tests/deploy/fixtures/ prove a broken reference is caught.
set -euo pipefail
validator=$1 dir=$2 expect=${4:-}
[[ ${3:-} == --expect-fail && -n $expect ]] || [[ $# -eq 2 ]] || { echo "usage: $0 VALIDATOR_DIR DIR [--expect-fail REGEX]" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
kubectl kustomize "$dir" >"$tmp/rendered.yaml" 2>"$tmp/kustomize.err" || { cat "$tmp/kustomize.err" >&2; exit 1; }
set +e
node "$validator/validate.mjs" check "$tmp/rendered.yaml" >"$tmp/out" 2>&1
rc=$?
set -e
cat "$tmp/out"
if [[ -z $expect ]]; then
  exit $rc
fi
if [[ $rc -eq 0 ]]; then
  echo "expected the validator to reject $dir, it accepted it" >&2
  exit 1
fi
if ! grep -Eq -- "$expect" "$tmp/out"; then
  echo "the validator rejected $dir, but not with /$expect/" >&2
  exit 1
fi
echo "rejected as expected: /$expect/"
