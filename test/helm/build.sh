#!/usr/bin/env bash
# Puts `helm` into test/helm/.cache/bin/ (git-ignored), for the chart checks in test/helm/check.sh:
#   built from the Helm release pinned in test/helm/go.mod (tools.go imports its cmd/helm, so go.sum holds exactly
#   the dependency versions that release declares).
# A helm the user already has wins: HELM (path of the program); then nothing is built.
#
# The built helm is also kept in a per-machine cache, keyed by the Go inputs and the Go version, so another clone
# on the same machine (CI clones afresh) links it instead of rebuilding:
#   ${STACKIT_HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stackit-pod-identity-webhook-helm}
# Go's own build cache (go env GOCACHE) makes a rebuild after a change to go.mod cheap as well.
#
# Environment: HELM_BUILD_JOBS (go build -p, default 2: the machines have two cores shared with other work).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin="$here/.cache/bin"
mkdir -p "$bin"

# Must equal the helm.sh/helm/v4 version required in go.mod; upgrade with: go get helm.sh/helm/v4@vX && go mod tidy.
helm_version=v4.3.1

if [ -n "${HELM:-}" ]; then
  # A bare name is looked up on PATH; a relative path is made absolute, so the link works from any folder.
  case $HELM in
    */*) HELM=$( (cd "$(dirname "$HELM")" 2>/dev/null && echo "${PWD%/}/$(basename "$HELM")") || echo "$HELM") ;;
    *) HELM=$(command -v "$HELM" || echo "$HELM") ;;
  esac
  [ -x "$HELM" ] || { echo "build.sh: HELM=$HELM is missing or not executable" >&2; exit 1; }
  ln -sfn "$HELM" "$bin/helm"
  echo "helm: using $HELM ($("$HELM" version --short 2>/dev/null || echo 'version unknown'))"
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: Go is needed to build helm (or set HELM to a helm binary)" >&2; exit 1; }
grep -qE "^require helm\.sh/helm/v4 $helm_version\$" "$here/go.mod" \
  || { echo "build.sh: go.mod does not require helm.sh/helm/v4 $helm_version; keep the two in step" >&2; exit 1; }
machine_cache=${STACKIT_HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stackit-pod-identity-webhook-helm}
version_pkg=helm.sh/helm/v4/internal/version
# The version variables make `helm version` report the release instead of "v4.3".
ldflags="-s -w -X $version_pkg.version=$helm_version -X $version_pkg.gitTreeState=clean"
# The key covers everything that decides the binary's content, so a stale binary is never reused.
key=$( (cd "$here" && cat go.mod go.sum tools.go && go version && echo "$ldflags") | sha256sum | cut -c1-16)
cached="$machine_cache/helm-$helm_version-$key"
if [ -x "$cached" ]; then
  echo "helm $helm_version: reusing $cached"
else
  mkdir -p "$machine_cache"
  echo "helm $helm_version: building (cold: 1 to 3 minutes on two cores; log in $here/.cache/build.log)"
  build_start=$SECONDS
  # As Helm's own Makefile builds a release: CGO off, -trimpath; -buildvcs=false keeps this repository's git state
  # out of the binary.
  if ! (cd "$here" && CGO_ENABLED=0 GOFLAGS=-mod=readonly nice -n 10 go build -p "${HELM_BUILD_JOBS:-2}" \
        -trimpath -buildvcs=false \
        -ldflags "$ldflags" \
        -o "$cached.tmp.$$" helm.sh/helm/v4/cmd/helm) >"$here/.cache/build.log" 2>&1; then
    tail -n 30 "$here/.cache/build.log" >&2
    rm -f "$cached.tmp.$$"
    exit 1
  fi
  # Renamed into place only when complete, so an interrupted build is never mistaken for a finished one.
  mv "$cached.tmp.$$" "$cached"
  echo "helm: built in $((SECONDS - build_start)) s"
fi
ln -sfn "$cached" "$bin/helm"
echo "helm: $("$bin/helm" version --short) in $bin"
