#!/usr/bin/env bash
# Chart checks with the real tool: puts helm into test/helm/.cache/bin/ (build.sh: HELM=/path/to/helm to use an
# installed one), then runs `helm lint --strict` and `helm template` on the chart once per row of values below.
# A row passes when both succeed, the rendering is not empty and `helm template` printed nothing on stderr (Helm
# reports ignored or clashing values there as warnings and still exits 0).
# Prints one "ok - ..." or "not ok - ..." line per row, then "helm checks: N passed, N failed" (.ci/run adds those
# counts to its own). Exits 1 on any failure. Until the chart exists it says "skipped: no chart" and exits 0.
#
# Environment: HELM_CHART (the chart's folder, default manifests/helm/stackit-pod-identity-webhook; for trying
# this script on another chart).
set -uo pipefail
cd "$(dirname "$0")/../.."

chart=${HELM_CHART:-manifests/helm/stackit-pod-identity-webhook}
# The reference chart's documented install: `helm install stackit-pod-identity-webhook ... -n <same name>`.
release=stackit-pod-identity-webhook
namespace=stackit-pod-identity-webhook
helm=test/helm/.cache/bin/helm
passed=0
failed=0

finish() {
  echo "helm checks: $passed passed, $failed failed"
  [ "$failed" -eq 0 ] && exit 0
  exit 1
}

start=$SECONDS
if ! bash test/helm/build.sh; then
  echo "not ok - helm build failed (see above; HELM=/path/to/helm uses a helm the machine already has)"
  failed=1
  finish
fi
echo "helm build took $((SECONDS - start)) s"

if [ ! -f "$chart/Chart.yaml" ]; then
  echo "skipped: no chart at $chart/ (helm lint and helm template run once $chart/Chart.yaml exists)"
  finish
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Helm's own config, cache and repository lists stay out of the user's home, so the result is the same everywhere.
export HELM_CONFIG_HOME="$tmp/config" HELM_CACHE_HOME="$tmp/cache" HELM_DATA_HOME="$tmp/data"

# A dummy PEM block, base64-encoded as webhook.caBundle expects; rendering only copies it.
ca_bundle=$(printf -- '-----BEGIN CERTIFICATE-----\nZHVtbXk=\n-----END CERTIFICATE-----\n' | base64 | tr -d '\n')

# helm's messages on one line: what it printed without the banner, [INFO] notes and hints (at most 8 lines).
findings() {
  grep -vE '^(==> Linting|\[INFO\]|Use --debug|[[:space:]]*$)' "$1" | head -n 8 | tr -s ' \n' ' ' | sed -E 's/ +$//'
}

row() { # label, then helm's value arguments
  local label=$1
  shift
  if ! "$helm" lint --strict "$chart" --namespace "$namespace" "$@" >"$tmp/lint" 2>&1; then
    echo "not ok - helm lint --strict ($label): $(findings "$tmp/lint")"
  elif ! "$helm" template "$release" "$chart" --namespace "$namespace" "$@" >"$tmp/out.yaml" 2>"$tmp/err"; then
    echo "not ok - helm template ($label): $(findings "$tmp/err")"
  elif [ -s "$tmp/err" ]; then
    echo "not ok - helm template ($label) printed warnings: $(findings "$tmp/err")"
  elif ! grep -q '^kind:' "$tmp/out.yaml"; then
    echo "not ok - helm template ($label) rendered no object"
  else
    echo "ok - helm lint --strict and helm template ($label)"
    passed=$((passed + 1))
    return
  fi
  failed=$((failed + 1))
}

start=$SECONDS
row "default values"
row "--set certmanager.enabled=true" --set certmanager.enabled=true
row "--set webhook.caBundle=<base64 PEM>" --set "webhook.caBundle=$ca_bundle"
row "-f test/fixtures/helm/reference-user-values.yaml" -f test/fixtures/helm/reference-user-values.yaml
echo "helm chart checks took $((SECONDS - start)) s"
finish
