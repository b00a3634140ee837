#!/usr/bin/env bash
# Puts the end-to-end tier's two programs into test/e2e/.cache/bin/ (git-ignored):
#   kube-apiserver  built from the Kubernetes release pinned in test/e2e/kube/go.mod;
#   etcd            Debian's etcd-server package (installed here when missing and we are root).
# Binaries the user already has win: KUBE_APISERVER / ETCD (paths of the programs) or KUBEBUILDER_ASSETS (an
# envtest folder holding both); then nothing is built or installed for that program.
#
# The built kube-apiserver is also kept in a per-machine cache, keyed by the Go inputs and the Go version, so
# another clone on the same machine (CI clones afresh) links it instead of rebuilding:
#   ${STACKIT_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stackit-pod-identity-webhook-e2e}
# Go's own build cache (go env GOCACHE) makes a rebuild after a change to main.go cheap as well.
#
# Environment: E2E_BUILD_JOBS (go build -p, default 2: the machines have two cores shared with other work).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin="$here/.cache/bin"
mkdir -p "$bin"
total_start=$SECONDS

# The Go module lists every k8s.io staging module at this version too; keep them in step when upgrading.
kube_version=v1.36.3

use_existing() { # name path: link a user-supplied binary into the cache folder, so the harness finds it either way
  local name=$1 path=$2
  [ -x "$path" ] || { echo "build.sh: $name at $path is missing or not executable" >&2; exit 1; }
  ln -sfn "$path" "$bin/$name"
  echo "$name: using $path"
}

# --- kube-apiserver --------------------------------------------------------------------------------------------
if [ -n "${KUBE_APISERVER:-}" ]; then
  use_existing kube-apiserver "$KUBE_APISERVER"
elif [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  use_existing kube-apiserver "$KUBEBUILDER_ASSETS/kube-apiserver"
else
  command -v go >/dev/null || {
    echo "build.sh: Go is needed to build kube-apiserver (or set KUBE_APISERVER)" >&2
    exit 1
  }
  machine_cache=${STACKIT_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stackit-pod-identity-webhook-e2e}
  # The key covers everything that decides the binary's content, so a stale binary is never reused.
  key=$( (cd "$here/kube" && cat go.mod go.sum main.go && go version && echo "$kube_version") | sha256sum | cut -c1-16)
  cached="$machine_cache/kube-apiserver-$kube_version-$key"
  if [ -x "$cached" ]; then
    echo "kube-apiserver $kube_version: reusing $cached"
  else
    mkdir -p "$machine_cache"
    echo "kube-apiserver $kube_version: building (cold: 3 to 5 minutes on two cores; log in $here/.cache/build.log)"
    build_start=$SECONDS
    version_pkg=k8s.io/component-base/version
    # -trimpath and -buildvcs=false keep local paths and this repository's git state out of the binary; the
    # version variables make /version report the release instead of v0.0.0-master.
    if ! (cd "$here/kube" && CGO_ENABLED=0 GOFLAGS=-mod=readonly nice -n 10 go build -p "${E2E_BUILD_JOBS:-2}" \
          -trimpath -buildvcs=false \
          -ldflags "-s -w -X $version_pkg.gitVersion=$kube_version -X $version_pkg.gitMajor=1 \
            -X $version_pkg.gitMinor=36" \
          -o "$cached.tmp.$$" .) >"$here/.cache/build.log" 2>&1; then
      tail -n 30 "$here/.cache/build.log" >&2
      rm -f "$cached.tmp.$$"
      exit 1
    fi
    # Renamed into place only when complete, so an interrupted build is never mistaken for a finished one.
    mv "$cached.tmp.$$" "$cached"
    echo "kube-apiserver: built in $((SECONDS - build_start)) s"
  fi
  ln -sfn "$cached" "$bin/kube-apiserver"
fi

# --- etcd ------------------------------------------------------------------------------------------------------
if [ -n "${ETCD:-}" ]; then
  use_existing etcd "$ETCD"
elif [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  use_existing etcd "$KUBEBUILDER_ASSETS/etcd"
else
  if [ ! -x /usr/bin/etcd ]; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "build.sh: etcd is missing; run: sudo apt-get install -y etcd-server (or set ETCD)" >&2
      exit 1
    fi
    echo "etcd: installing Debian's etcd-server"
    apt_start=$SECONDS
    # The package's service is not wanted (the tests start their own etcd); in containers policy-rc.d already
    # refuses to start it, elsewhere it is merely enabled and idle on its default port.
    apt_log="$here/.cache/apt.log"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server) >"$apt_log" 2>&1 \
      || { tail -n 20 "$apt_log" >&2; exit 1; }
    echo "etcd: installed in $((SECONDS - apt_start)) s"
  fi
  ln -sfn /usr/bin/etcd "$bin/etcd"
  echo "etcd: $(/usr/bin/etcd --version | head -n 1)"
fi

echo "e2e binaries ready in $bin ($((SECONDS - total_start)) s)"
