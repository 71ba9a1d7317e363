#!/usr/bin/env bash
# Tears down everything hack/cluster-up.sh started: the kwokctl cluster and its processes, the
# pod network namespace, its veth pair and route, the real node, cert-manager's process. Safe to
# run when nothing is up.
set -uo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# cert-manager's process (hack/cert-manager-up.sh) lives beside the cluster.
if [[ -f $STATE_DIR/cert-manager.pid ]]; then
	kill "$(cat "$STATE_DIR/cert-manager.pid")" 2>/dev/null && sleep 1
	kill -9 "$(cat "$STATE_DIR/cert-manager.pid")" 2>/dev/null
fi
BIN=$CONTROLPLANE_BIN
if [[ -x $BIN/kwokctl && -d $STATE_DIR/kwok/clusters/$CLUSTER_NAME ]]; then
	log "deleting cluster $CLUSTER_NAME"
	KWOK_WORKDIR="$STATE_DIR/kwok" "$BIN/kwokctl" delete cluster --name "$CLUSTER_NAME" \
		--kubeconfig "$KUBECONFIG_PATH" >/dev/null 2>&1 || log "kwokctl delete failed; killing its processes"
fi
# Whatever kwokctl left running (a crash mid-bring-up) is found by its work dir in the command line.
if [[ -d $STATE_DIR ]]; then
	pkill -f -- "$STATE_DIR/kwok" 2>/dev/null && sleep 1
	pkill -9 -f -- "$STATE_DIR/kwok" 2>/dev/null
fi
# The real node: kubelet first (it stops the pods), then containerd, their mounts, the bridge, the
# DNAT rule, the cgroups and the forwarding setting it changed.
if [[ -d $NODE_DIR ]]; then
	pkill -f -- "--root-dir $NODE_DIR/kubelet" 2>/dev/null && sleep 1
	if [[ -S $NODE_DIR/containerd.sock ]] && command -v ctr >/dev/null; then
		for c in $(ctr -a "$NODE_DIR/containerd.sock" -n k8s.io tasks ls -q 2>/dev/null); do
			ctr -a "$NODE_DIR/containerd.sock" -n k8s.io tasks kill -s SIGKILL "$c" >/dev/null 2>&1
		done
		sleep 1
	fi
	pkill -f -- "containerd --config $NODE_DIR/containerd.toml" 2>/dev/null && sleep 1
	pkill -9 -f -- "$NODE_DIR" 2>/dev/null
	pkill -9 -f -- "containerd-shim.*$NODE_DIR" 2>/dev/null
	grep -o " $NODE_DIR[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
	if [[ -f $NODE_DIR/dnat ]]; then
		read -r -a rule <"$NODE_DIR/dnat"
		iptables -t nat -D "${rule[@]}" 2>/dev/null
	fi
	[[ -f $NODE_DIR/ip_forward ]] && sysctl -qw net.ipv4.ip_forward="$(cat "$NODE_DIR/ip_forward")"
	for h in /sys/fs/cgroup/*/kemqx; do
		[[ -d $h ]] && find "$h" -depth -type d -exec rmdir {} \; 2>/dev/null
	done
fi
if command -v ip >/dev/null; then
	ip link del "$NODE_BRIDGE" 2>/dev/null
	ip route del "$POD_RANGE" 2>/dev/null
	ip link del "$VETH_HOST" 2>/dev/null
	ip netns del "$NETNS" 2>/dev/null
fi
rm -rf "$STATE_DIR"
exit 0
