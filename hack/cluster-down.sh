#!/usr/bin/env bash
# Tears down everything hack/cluster-up.sh started: the kwokctl cluster and its processes, the
# pod network namespace, its veth pair and route. Safe to run when nothing is up.
set -uo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

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
if command -v ip >/dev/null; then
	ip route del "$POD_RANGE" 2>/dev/null
	ip link del "$VETH_HOST" 2>/dev/null
	ip netns del "$NETNS" 2>/dev/null
fi
rm -rf "$STATE_DIR"
exit 0
