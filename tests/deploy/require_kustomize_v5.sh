# Sourced by the deploy tests that render deploy/k8s.
# The kustomizations use kustomize v5 syntax (`resources` naming folders, `patches`, `labels`,
# `components`). kubectl embeds kustomize from 1.14 on and reports its version from 1.24 on;
# Debian 12's kubernetes-client (kubectl 1.20.2) embeds kustomize v2.0.3, which reads none of
# that. Say so instead of failing on a YAML error, and exit 77, which ctest reports as skipped
# (SKIP_RETURN_CODE): the rest of the suite still passes on a fresh Debian 12.
kustomize_version=$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\{0,1\}\([0-9]*\).*/\1/p')
if [[ -z $kustomize_version || $kustomize_version -lt 5 ]]; then
  client=$(kubectl version --client 2>/dev/null | head -n1 || true)
  echo "kubectl embeds kustomize ${kustomize_version:-older than v4 (it does not report one)}; deploy/k8s needs" \
       "kustomize v5 (kubectl >= 1.27). Found: ${client:-no kubectl}. Debian 12's kubernetes-client is kubectl 1.20.2" \
       "(kustomize v2.0.3): install kubectl >= 1.27 from the Kubernetes project's packages (docs/deploy.md)." >&2
  exit 77
fi
