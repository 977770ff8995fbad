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

# The kustomizations use kustomize v5 syntax (`resources` naming folders, `patches`, `labels`,
# `components`). kubectl embeds kustomize from 1.14 on and reports its version from 1.24 on;
# Debian 12's kubernetes-client (kubectl 1.20.2) embeds kustomize v2.0.3, which reads none of
# that. Say so instead of failing on a YAML error.
kustomize_version=$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\{0,1\}\([0-9]*\).*/\1/p')
if [[ -z $kustomize_version || $kustomize_version -lt 5 ]]; then
  client=$(kubectl version --client 2>/dev/null | head -n1 || true)
  echo "kubectl embeds kustomize ${kustomize_version:-older than v4 (it does not report one)}; deploy/k8s needs" \
       "kustomize v5 (kubectl >= 1.27). Found: ${client:-no kubectl}. Debian 12's kubernetes-client is kubectl 1.20.2" \
       "(kustomize v2.0.3): install kubectl >= 1.27 from the Kubernetes project's packages (docs/deploy.md)." >&2
  exit 1
fi

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
