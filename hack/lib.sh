# Shared settings of the local-cluster scripts. Source it; do not run it.
# shellcheck shell=bash

HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT_DIR=$(cd "$HACK_DIR/.." && pwd)

CACHE_ROOT=${KUBECTL_EMQX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-emqx}
KUBE_VERSION=v1.36.3
# The control-plane binaries are cached in a directory keyed by the nested module's go.mod/go.sum.
CONTROLPLANE_DIR=$CACHE_ROOT/controlplane/$KUBE_VERSION-$(cat "$HACK_DIR/controlplane/go.mod" "$HACK_DIR/controlplane/go.sum" | sha256sum | cut -c1-16)
CONTROLPLANE_BIN=$CONTROLPLANE_DIR/bin
# One local cluster per machine user; its state (kubeconfig, kwok work dir, logs) lives here.
CLUSTER_NAME=${KEMQX_CLUSTER_NAME:-kemqx}
STATE_DIR=${KEMQX_STATE_DIR:-$CACHE_ROOT/cluster/$CLUSTER_NAME}
KUBECONFIG_PATH=$STATE_DIR/kubeconfig
APISERVER_PORT=${KEMQX_APISERVER_PORT:-16443}
# The API server's client certificate for admission webhooks and the CA that signed it (the e2e
# webhooks require it: --client-ca-file=$WEBHOOK_CLIENT_DIR/ca.crt).
WEBHOOK_CLIENT_DIR=$STATE_DIR/webhook-client

# Fake pod IPs come from 198.18.0.0/15 (RFC 2544, reserved for benchmarking: nobody's network).
# Node k gets 198.18.<k+1>.0/24. They are answered from the network namespace NETNS, where the
# whole /20 is a local route; the host reaches it through a veth pair.
NETNS=${KEMQX_NETNS:-kemqx}
VETH_HOST=${NETNS}-h
VETH_NS=${NETNS}-n
HOST_ADDR=198.18.255.1
NS_ADDR=198.18.255.2
POD_RANGE=198.18.0.0/20
SERVICE_RANGE=198.18.64.0/20
NODES=${KEMQX_NODES:-3}

# The real node (REAL_NODE=1): kubelet and containerd on this machine, pods on a bridge in another
# reserved benchmark range.
REAL_NODE=${REAL_NODE:-}
NODE_NAME=kemqx-real-0
NODE_DIR=$STATE_DIR/node
NODE_BRIDGE=${NETNS}0
NODE_RANGE=198.19.0.0/24
NODE_GW=198.19.0.1
NODE_KUBELET_PORT=10250
NODE_KUBELET_HEALTHZ=10248
NODE_TAINT=kemqx.io/real-node
NODE_LABEL=kemqx.io/real-node
NODE_PAUSE_IMAGE=kemqx.local/pause:1

log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }

# cached_build DIR WHAT CMD...: runs CMD once for the cache directory DIR (its name is the key of
# what is built), under a lock so that concurrent callers build it once; WHAT is said while it
# builds. CMD writes into DIR.
cached_build() {
	local dir=$1 what=$2
	shift 2
	[[ -f $dir/complete ]] && return 0
	mkdir -p "$dir"
	exec 9>"$dir/lock"
	flock 9
	if [[ ! -f $dir/complete ]]; then
		log "building $what (a few minutes cold; cached afterwards)"
		"$@"
		touch "$dir/complete"
	fi
	exec 9>&-
}
die() { log "$*"; exit 1; }

need_root_net() {
	command -v ip >/dev/null || die "iproute2 (ip) is needed for the pod network namespace: apt-get install -y iproute2"
	[[ $(id -u) == 0 ]] || die "creating the pod network namespace needs root (or CAP_NET_ADMIN)"
}
