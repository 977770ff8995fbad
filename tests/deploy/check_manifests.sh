#!/usr/bin/env bash
# Renders one kustomization with `kubectl kustomize` and checks it offline: API schemas,
# cross-references and, with --images, the exact image of every container
# (tests/deploy/validator/validate.mjs).
#   check_manifests.sh VALIDATOR_DIR KUSTOMIZATION_DIR [--images IMAGES.yaml KEY] [--expect-fail REGEX]
# With --expect-fail the check must fail and its report must match REGEX: that is how the
# fixtures in tests/deploy/fixtures/ prove a broken reference is caught.
set -euo pipefail
usage() { echo "usage: $0 VALIDATOR_DIR DIR [--images IMAGES.yaml KEY] [--expect-fail REGEX]" >&2; exit 2; }
[[ $# -ge 2 ]] || usage
validator=$1 dir=$2
shift 2
images=() expect=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --images) [[ $# -ge 3 ]] || usage; images=("$2" "$3"); shift 3 ;;
    --expect-fail) [[ $# -ge 2 && -n $2 ]] || usage; expect=$2; shift 2 ;;
    *) usage ;;
  esac
done

. "$(dirname "$0")/require_kustomize_v5.sh"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
kubectl kustomize "$dir" >"$tmp/rendered.yaml" 2>"$tmp/kustomize.err" || { cat "$tmp/kustomize.err" >&2; exit 1; }
# Deprecated fields (bases, patchesStrategicMerge, patchesJson6902, commonLabels) still render
# in kustomize v5 but warn; none is left in deploy/k8s or the fixtures.
if grep -qi "deprecated" "$tmp/kustomize.err"; then cat "$tmp/kustomize.err" >&2; exit 1; fi
set +e
node "$validator/validate.mjs" check "$tmp/rendered.yaml" "${images[@]}" >"$tmp/out" 2>&1
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
