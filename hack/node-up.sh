#!/usr/bin/env bash
# Adds one real node to the local cluster (REAL_NODE=1 hack/cluster-up.sh runs it): Debian's
# containerd and runc, the CNI bridge plugin on a /24 of a reserved benchmark range, and kubelet
# from the cached control-plane build. The node is tainted so that only what is meant for it runs
# there; kwok manages only the fake nodes. Idempotent; hack/cluster-down.sh removes all of it.
#
# The API server's aggregator and admission webhooks dial Service endpoints directly
# (--enable-aggregator-routing), so the API server reaches pods on the bridge. The other way, a
# pod reaches the `kubernetes` Service through one DNAT rule from its ClusterIP to the API server,
# which listens on the bridge's address (REAL_NODE=1) with that ClusterIP in its certificate: the
# one Service pods here need, without kube-proxy.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_root_net
BIN=$CONTROLPLANE_BIN
KUBECTL="$BIN/kubectl --kubeconfig $KUBECONFIG_PATH"
[[ -x $BIN/kubelet ]] || die "no kubelet in $BIN: run hack/controlplane.sh"

# The runtime, from Debian, when missing. Another runtime holding our socket is impossible (the
# socket is ours, under the state dir); without root or apt this fails and says what to do.
missing=()
command -v containerd >/dev/null || missing+=(containerd)
command -v runc >/dev/null || missing+=(runc)
[[ -x /usr/lib/cni/bridge ]] || missing+=(containernetworking-plugins)
command -v iptables >/dev/null || missing+=(iptables)
if ((${#missing[@]})); then
	log "installing ${missing[*]} from Debian"
	apt-get install -y "${missing[@]}" >"$STATE_DIR/apt.log" 2>&1 ||
		die "could not install ${missing[*]} (log: $STATE_DIR/apt.log); install them (apt-get install -y ${missing[*]}) and run again"
fi

mkdir -p "$NODE_DIR"/{containerd,cni,kubelet,images}
sock=$NODE_DIR/containerd.sock

# The bridge exists before the cluster starts (cluster-up creates it), so that the API server can
# listen on its address; pods get their IPs from the CNI bridge plugin.
ip link show "$NODE_BRIDGE" >/dev/null 2>&1 || die "bridge $NODE_BRIDGE missing: bring the cluster up with REAL_NODE=1"

# Forwarding between the bridge and the fake pods' namespace; the old value is restored by
# cluster-down.
[[ -f $NODE_DIR/ip_forward ]] || sysctl -n net.ipv4.ip_forward >"$NODE_DIR/ip_forward"
sysctl -qw net.ipv4.ip_forward=1
ip netns exec "$NETNS" ip route replace "$NODE_RANGE" via "$HOST_ADDR"
# The kubernetes Service, for pods: its ClusterIP to the API server on the bridge.
svc_ip=$($KUBECTL get svc kubernetes -n default -o jsonpath='{.spec.clusterIP}')
rule=(PREROUTING -s "$NODE_RANGE" -d "$svc_ip" -p tcp --dport 443 -j DNAT --to-destination "$NODE_GW:$APISERVER_PORT")
iptables -t nat -C "${rule[@]}" 2>/dev/null || iptables -t nat -A "${rule[@]}"
printf '%s\n' "${rule[*]}" >"$NODE_DIR/dnat"

cat >"$NODE_DIR/cni/10-kemqx.conf" <<EOF
{"cniVersion": "0.4.0", "name": "kemqx", "type": "bridge", "bridge": "$NODE_BRIDGE",
 "isGateway": true, "ipMasq": false,
 "ipam": {"type": "host-local", "subnet": "$NODE_RANGE", "gateway": "$NODE_GW",
          "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$NODE_DIR/cni/ipam"}}
EOF

cat >"$NODE_DIR/containerd.toml" <<EOF
version = 2
root = "$NODE_DIR/containerd/root"
state = "$NODE_DIR/containerd/state"
[grpc]
  address = "$sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$NODE_PAUSE_IMAGE"
  # The sandbox has no CAP_SYS_RESOURCE: a negative oom_score_adj fails in runc.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE_DIR/cni"
EOF
if ! ctr -a "$sock" version >/dev/null 2>&1; then
	log "starting containerd"
	containerd --config "$NODE_DIR/containerd.toml" >"$NODE_DIR/containerd.log" 2>&1 &
	for ((i = 0; i < 100; i++)); do ctr -a "$sock" version >/dev/null 2>&1 && break; sleep 0.1; done
	ctr -a "$sock" version >/dev/null 2>&1 || { tail -5 "$NODE_DIR/containerd.log" >&2; die "containerd did not start (log: $NODE_DIR/containerd.log)"; }
fi

# The pause image, built like the webhook's (no registry, no Docker).
if ! ctr -a "$sock" -n k8s.io images ls -q | grep -qx "$NODE_PAUSE_IMAGE"; then
	(cd "$HACK_DIR/tools" && CGO_ENABLED=0 go build -o "$NODE_DIR/images/pause" ./pause &&
		go run ./imagetar -binary "$NODE_DIR/images/pause" -name pause -ref "$NODE_PAUSE_IMAGE" -o "$NODE_DIR/images/pause.tar" >/dev/null)
	ctr -a "$sock" -n k8s.io images import "$NODE_DIR/images/pause.tar" >/dev/null
fi

# cgroup v1 here: kubelet's own root in every hierarchy (cpuset needs its parent's values).
for h in /sys/fs/cgroup/*/; do
	[[ -d $h ]] || continue
	mkdir -p "$h/kemqx" 2>/dev/null || continue
	if [[ -f $h/cpuset.cpus ]]; then
		cat "$h/cpuset.cpus" >"$h/kemqx/cpuset.cpus"
		cat "$h/cpuset.mems" >"$h/kemqx/cpuset.mems"
	fi
done

cat >"$NODE_DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /kemqx
containerRuntimeEndpoint: unix://$sock
address: $NODE_GW
port: $NODE_KUBELET_PORT
healthzBindAddress: 127.0.0.1
healthzPort: $NODE_KUBELET_HEALTHZ
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $STATE_DIR/kwok/clusters/$CLUSTER_NAME/pki/ca.crt}
authorization: {mode: AlwaysAllow}
failSwapOn: false
# No name server for pods: nothing here resolves names, and the machine's resolver is not ours.
resolvConf: ""
evictionHard: {}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
registerWithTaints:
- {key: $NODE_TAINT, value: "true", effect: NoSchedule}
EOF
if ! curl -sf "http://127.0.0.1:$NODE_KUBELET_HEALTHZ/healthz" >/dev/null 2>&1; then
	log "starting kubelet as node $NODE_NAME"
	"$BIN/kubelet" --config "$NODE_DIR/kubelet.yaml" --kubeconfig "$STATE_DIR/kwok/clusters/$CLUSTER_NAME/kubeconfig.yaml" \
		--root-dir "$NODE_DIR/kubelet" --hostname-override "$NODE_NAME" --node-ip "$NODE_GW" \
		--node-labels "$NODE_LABEL=true" >"$NODE_DIR/kubelet.log" 2>&1 &
fi
for ((i = 0; i < 600; i++)); do $KUBECTL get "node/$NODE_NAME" >/dev/null 2>&1 && break; sleep 0.2; done
$KUBECTL wait --for=condition=Ready "node/$NODE_NAME" --timeout=120s >/dev/null 2>&1 ||
	{ tail -20 "$NODE_DIR/kubelet.log" >&2; die "node $NODE_NAME did not become Ready (log: $NODE_DIR/kubelet.log)"; }
log "node $NODE_NAME is Ready (pods in $NODE_RANGE, taint $NODE_TAINT)"
