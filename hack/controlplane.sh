#!/usr/bin/env bash
# Builds the pinned local Kubernetes control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, etcd, kwok, kwokctl) from the Go module proxy, once, and caches it.
#
# Usage: hack/controlplane.sh            # builds if needed, prints the binary directory on stdout
#
# The cache lives outside the work tree, in a directory keyed by the nested module's go.mod and
# go.sum, so a version bump builds afresh and an unchanged tree reuses the binaries at once.
# A cold build takes about 20 minutes on 2 cores; a warm one is instant. Interrupting is safe: the
# binaries only move into place, with a completion stamp, when the whole build has succeeded.
set -euo pipefail

# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
mod="$HACK_DIR/controlplane"
kube_version=$KUBE_VERSION
dir=$CONTROLPLANE_DIR
bin=$CONTROLPLANE_BIN
stamp="$dir/complete"

if [[ -f "$stamp" ]]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$dir"
# Only one build at a time per cache key; a second caller waits for the first.
exec 9>"$dir/lock"
if ! flock -n 9; then
	log "another build of this control plane is running; waiting for it"
	flock 9
fi
if [[ -f "$stamp" ]]; then
	echo "$bin"
	exit 0
fi

major=${kube_version#v}
major=${major%%.*}
minor=${kube_version#v*.}
minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
	ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

tmp="$dir/bin.partial"
rm -rf "$tmp"
mkdir -p "$tmp"
log "building Kubernetes $kube_version control plane, etcd and kwok into $bin"
log "a cold build takes about 20 minutes on 2 cores (kube-apiserver alone about 16); it is cached afterwards"
start=$(date +%s)
(
	cd "$mod"
	# A heartbeat so that a long, silent compile is visibly alive.
	while sleep 60; do log "still building ($((($(date +%s) - start) / 60)) min so far)"; done &
	beat=$!
	trap 'kill $beat 2>/dev/null || true' EXIT
	CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/" tool
)
# The etcd main package is the root of module go.etcd.io/etcd/server/v3; go names its binary "server".
mv "$tmp/server" "$tmp/etcd"
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok kwokctl; do
	[[ -x "$tmp/$b" ]] || { log "build produced no $b"; exit 1; }
done
"$tmp/kube-apiserver" --version | grep -q "$kube_version" || {
	log "kube-apiserver does not report $kube_version: $("$tmp/kube-apiserver" --version)"
	exit 1
}
rm -rf "$bin"
mv "$tmp" "$bin"
touch "$stamp"
log "done in $((($(date +%s) - start) / 60)) min"
echo "$bin"
