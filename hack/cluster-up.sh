#!/usr/bin/env bash
# Starts the local Kubernetes cluster: kube-apiserver, kube-controller-manager, kube-scheduler,
# etcd and kwok as local processes (kwokctl --runtime binary), three fake nodes, and a network
# namespace that answers the fake pod IPs; with REAL_NODE=1 also one real kubelet + containerd
# node (hack/node-up.sh). Idempotent; on failure it tears down what it started.
#
# Prints the kubeconfig path on stdout.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_root_net
BIN=$("$HACK_DIR/controlplane.sh")
KUBECTL="$BIN/kubectl --kubeconfig $KUBECONFIG_PATH"

# A cluster without the real node is made again when one is asked for (the API server must listen
# on the node's bridge from its start), and one made before its API server had a client
# certificate for webhooks.
if [[ -f $STATE_DIR/ready && ( -z $REAL_NODE || -f $STATE_DIR/real-node ) && -f $WEBHOOK_CLIENT_DIR/admission.yaml ]] && $KUBECTL get --raw /readyz >/dev/null 2>&1; then
	log "cluster $CLUSTER_NAME is already up"
	echo "$KUBECONFIG_PATH"
	exit 0
fi

ok=
cleanup() { [[ -n $ok ]] || { log "bring-up failed; tearing down"; "$HACK_DIR/cluster-down.sh" >&2 || true; }; }
trap cleanup EXIT

# A half-started cluster from an earlier run is torn down first.
"$HACK_DIR/cluster-down.sh" >/dev/null 2>&1 || true
mkdir -p "$STATE_DIR"

log "creating network namespace $NETNS for pod IPs in $POD_RANGE"
ip netns add "$NETNS"
ip link add "$VETH_HOST" type veth peer name "$VETH_NS"
ip link set "$VETH_NS" netns "$NETNS"
ip addr add "$HOST_ADDR/30" dev "$VETH_HOST"
ip link set "$VETH_HOST" up
ip netns exec "$NETNS" ip link set lo up
ip netns exec "$NETNS" ip addr add "$NS_ADDR/30" dev "$VETH_NS"
ip netns exec "$NETNS" ip link set "$VETH_NS" up
# Every address of the pod range is local inside the namespace: a process can bind any pod IP.
ip netns exec "$NETNS" ip route add local "$POD_RANGE" dev lo
ip route replace "$POD_RANGE" via "$NS_ADDR" dev "$VETH_HOST"

# The real node's bridge comes first: the API server listens on its address.
apiserver_bind=
if [[ -n $REAL_NODE ]]; then
	ip link add "$NODE_BRIDGE" type bridge
	ip addr add "$NODE_GW/24" dev "$NODE_BRIDGE"
	ip link set "$NODE_BRIDGE" up
	apiserver_bind="  - key: bind-address
    value: 0.0.0.0"
fi

# The API server authenticates to admission webhooks with a client certificate, as README's
# "Who can reach the webhook" shows: an AdmissionConfiguration whose kubeConfigFile presents it to
# every webhook (the user '*'). Made afresh for each cluster.
log "making the API server's admission client certificate"
mkdir -p "$WEBHOOK_CLIENT_DIR"
(
	cd "$WEBHOOK_CLIENT_DIR"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=kemqx-webhook-client-ca \
		-addext basicConstraints=critical,CA:TRUE,pathlen:0 -addext keyUsage=critical,keyCertSign \
		-keyout ca.key -out ca.crt 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=kube-apiserver-webhook-client \
		-keyout client.key -out client.csr 2>/dev/null
	openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
		-extfile <(printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n') -out client.crt 2>/dev/null
	chmod 600 ca.key client.key
) || die "openssl could not make the admission client certificate"
cat >"$WEBHOOK_CLIENT_DIR/kubeconfig" <<EOF
apiVersion: v1
kind: Config
users:
- name: '*'
  user:
    client-certificate: $WEBHOOK_CLIENT_DIR/client.crt
    client-key: $WEBHOOK_CLIENT_DIR/client.key
EOF
cat >"$WEBHOOK_CLIENT_DIR/admission.yaml" <<EOF
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: ValidatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: $WEBHOOK_CLIENT_DIR/kubeconfig
- name: MutatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: $WEBHOOK_CLIENT_DIR/kubeconfig
EOF

cat >"$STATE_DIR/kwok.yaml" <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  kubeVersion: v1.36.3
  bindAddress: 127.0.0.1
  kubeApiserverPort: $APISERVER_PORT
  kubeApiserverBinary: $BIN/kube-apiserver
  kubeControllerManagerBinary: $BIN/kube-controller-manager
  kubeSchedulerBinary: $BIN/kube-scheduler
  kubectlBinary: $BIN/kubectl
  # Pods of the real node reach the API server at the kubernetes Service's ClusterIP.
  kubeApiserverCertSANs: [${SERVICE_RANGE%.*/*}.1, $NODE_GW]
  kwokControllerBinary: $BIN/kwok
  etcdBinary: $BIN/etcd
  enableCRDs: [PortForward, ClusterPortForward]
componentsPatches:
# The aggregation layer as a production API server has it, for the custom metrics API: the
# aggregator dials the APIService's endpoints (there is no kube-proxy for ClusterIPs) and
# identifies the caller with request headers signed by a client CA it publishes in
# kube-system/extension-apiserver-authentication.
- name: kube-apiserver
  extraArgs:
$apiserver_bind
  # A kubelet is reached at its InternalIP (the real node's bridge address), never by a host name
  # to look up in DNS; kwok's nodes have only the name localhost. The API server authenticates to
  # the real kubelet with the cluster's client certificate.
  - key: kubelet-preferred-address-types
    value: InternalIP,Hostname
  - key: kubelet-client-certificate
    value: $STATE_DIR/kwok/clusters/$CLUSTER_NAME/pki/admin.crt
  - key: kubelet-client-key
    value: $STATE_DIR/kwok/clusters/$CLUSTER_NAME/pki/admin.key
  # ClusterIPs from a reserved benchmark range as well (the default would be 10.0.0.0/24).
  - key: admission-control-config-file
    value: $WEBHOOK_CLIENT_DIR/admission.yaml
  - key: service-cluster-ip-range
    value: $SERVICE_RANGE
  - key: enable-aggregator-routing
    value: "true"
  - key: requestheader-allowed-names
    value: kwok-admin
  - key: requestheader-client-ca-file
    value: $STATE_DIR/kwok/clusters/$CLUSTER_NAME/pki/ca.crt
  - key: requestheader-username-headers
    value: X-Remote-User
  - key: requestheader-group-headers
    value: X-Remote-Group
  - key: requestheader-extra-headers-prefix
    value: X-Remote-Extra-
# kwok plays kubelet for the fake nodes only, never for the real one.
- name: kwok-controller
  extraArgs:
  - key: manage-all-nodes
    value: "false"
  - key: manage-nodes-with-annotation-selector
    value: kwok.x-k8s.io/node=fake
- name: kube-controller-manager
  extraArgs:
  - key: use-service-account-credentials
    value: "true"
---
EOF
# Our kwok Stages replace kwok's defaults: pods with a readinessProbe or readiness gates start
# NotReady and emqx-sim follow plays kubelet's part for them (hack/kwok/stages.yaml says why).
cat "$HACK_DIR/kwok/stages.yaml" >>"$STATE_DIR/kwok.yaml"

log "starting the control plane (kwokctl, local binaries from $BIN)"
KWOK_WORKDIR="$STATE_DIR/kwok" "$BIN/kwokctl" create cluster --name "$CLUSTER_NAME" \
	--config "$STATE_DIR/kwok.yaml" --kubeconfig "$KUBECONFIG_PATH" --wait 2m >"$STATE_DIR/kwokctl.log" 2>&1 ||
	{ tail -20 "$STATE_DIR/kwokctl.log" >&2; die "kwokctl could not start the cluster (log: $STATE_DIR/kwokctl.log)"; }
# kwokctl writes a context named kwok-<name>; make it the current one of our kubeconfig.
$KUBECTL config use-context "kwok-$CLUSTER_NAME" >/dev/null

log "adding $NODES fake nodes"
for ((k = 0; k < NODES; k++)); do
	cat <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$k
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: kwok-node-$k
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
spec:
  podCIDR: 198.18.$((k + 1)).0/24
  podCIDRs: [198.18.$((k + 1)).0/24]
---
EOF
done | $KUBECTL apply -f - >/dev/null
$KUBECTL wait --for=condition=Ready node --all --timeout=60s >/dev/null ||
	die "fake nodes did not become Ready"

if [[ -n $REAL_NODE ]]; then
	"$HACK_DIR/node-up.sh"
	touch "$STATE_DIR/real-node"
fi
touch "$STATE_DIR/ready"
ok=1
log "cluster $CLUSTER_NAME is up; export KUBECONFIG=$KUBECONFIG_PATH"
echo "$KUBECONFIG_PATH"
