#!/usr/bin/env bash
# make demo: the whole story on this machine. A local Kubernetes control plane (built once, ~20
# minutes cold, then cached), a simulated 3-pod EMQX (the Helm chart's shape) carrying 10,000
# clients, the emqx-webhook, then: scale to 4 and `kubectl emqx rebalance`; `kubectl scale` back
# to 3 with the webhook holding the deletion until the node is empty; `kubectl drain` of a node
# the same way, and a rebalance of the node that came back empty; the final status and the
# sessions lost (0); last, a HorizontalPodAutoscaler on the custom metrics API scales 3→5 as
# clients arrive (rebalanced automatically) and back to 3 as they leave. KEEP=1 leaves everything running; a second run removes what it left.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ns=mqtt
sim_admin=127.0.0.1:18999
wh_port=19443
wh_health=127.0.0.1:19081
cm_port=19643
work=$(mktemp -d -t kemqx-demo-XXXX)
tty=; [[ -t 1 ]] && tty=1
say() { if [[ -n $tty ]]; then printf '\n\033[1;36m== %s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi; }
run() { printf '$ %s\n' "$*"; "$@"; }

was_up=; [[ -f $STATE_DIR/ready ]] && was_up=1
sim_pid= wh_pid=
cleanup() {
	local rc=$?
	if [[ ${KEEP:-} == 1 ]]; then
		printf '\nKEEP=1: everything keeps running.\n  export KUBECONFIG=%s\n  export PATH=%s:$PATH\n  simulator API: http://%s/sim/v1/stats (pid %s), webhook pid %s, logs in %s\n  stop with: kill %s %s; make cluster-down\n' \
			"$KUBECONFIG_PATH" "$work/bin" "$sim_admin" "$sim_pid" "$wh_pid" "$work" "$sim_pid" "$wh_pid"
		exit $rc
	fi
	[[ -n $wh_pid ]] && kill "$wh_pid" 2>/dev/null
	[[ -n $sim_pid ]] && kill "$sim_pid" 2>/dev/null
	kubectl delete validatingwebhookconfiguration,mutatingwebhookconfiguration emqx-webhook --ignore-not-found >/dev/null 2>&1 || true
	# An APIService without its server would break discovery for every later kubectl.
	kubectl delete apiservice v1beta2.custom.metrics.k8s.io --ignore-not-found >/dev/null 2>&1 || true
	kubectl delete ns "$ns" emqx-webhook --wait=false --ignore-not-found >/dev/null 2>&1 || true
	[[ -n $was_up ]] || "$HACK_DIR/cluster-down.sh"
	[[ $rc == 0 ]] || printf 'demo failed (exit %s); logs in %s\n' "$rc" "$work" >&2
	[[ $rc != 0 ]] || rm -rf "$work"
	exit $rc
}
trap cleanup EXIT

say "Local control plane (the first build takes about 20 minutes; it is cached afterwards)"
export KUBECONFIG=$KUBECONFIG_PATH
"$HACK_DIR/cluster-up.sh" >/dev/null
# Idempotent: what an earlier run left (KEEP=1, or an interrupted run) goes first.
pkill -f "emqx-sim follow --netns $NETNS --admin $sim_admin" 2>/dev/null || true
pkill -f "emqx-webhook --kubeconfig $KUBECONFIG_PATH --namespace emqx-webhook --host 127.0.0.1 --port $wh_port" 2>/dev/null || true
"$CONTROLPLANE_BIN/kubectl" delete validatingwebhookconfiguration,mutatingwebhookconfiguration emqx-webhook --ignore-not-found >/dev/null
"$CONTROLPLANE_BIN/kubectl" delete apiservice v1beta2.custom.metrics.k8s.io --ignore-not-found >/dev/null
if "$CONTROLPLANE_BIN/kubectl" get ns "$ns" >/dev/null 2>&1 || "$CONTROLPLANE_BIN/kubectl" get ns emqx-webhook >/dev/null 2>&1; then
	echo "removing what an earlier demo left"
	"$CONTROLPLANE_BIN/kubectl" delete ns "$ns" emqx-webhook --ignore-not-found --wait=true --timeout=120s >/dev/null
fi
command -v kubectl >/dev/null || export PATH=$CONTROLPLANE_BIN:$PATH
mkdir -p "$work/bin"
(cd "$ROOT_DIR" && go build -o "$work/bin/" ./cmd/...)
cp "$ROOT_DIR/krew/kubectl_complete-emqx" "$work/bin/"
export PATH=$work/bin:$PATH
run kubectl get nodes

say "Simulated EMQX following the pods, and the emqx-webhook"
emqx-sim follow --netns "$NETNS" --admin "$sim_admin" --time-scale 5 >"$work/emqx-sim.log" 2>&1 &
sim_pid=$!
kubectl create ns emqx-webhook >/dev/null
kubectl apply -f "$ROOT_DIR/manifests/base/webhook.yaml" >/dev/null
# The webhook runs here as a process, so its configuration points at a URL instead of a Service.
i=0
for path in /evict /pod-delete /scale; do
	kubectl patch validatingwebhookconfiguration emqx-webhook --type=json \
		-p "[{\"op\":\"replace\",\"path\":\"/webhooks/$i/clientConfig\",\"value\":{\"url\":\"https://127.0.0.1:$wh_port$path\"}}]" >/dev/null
	i=$((i + 1))
done
kubectl patch mutatingwebhookconfiguration emqx-webhook --type=json \
	-p "[{\"op\":\"replace\",\"path\":\"/webhooks/0/clientConfig\",\"value\":{\"url\":\"https://127.0.0.1:$wh_port/pod-create\"}}]" >/dev/null
# The custom metrics API (manifests/autoscaling/): the API server's aggregator reaches the webhook
# process at the host's address on the pod network, through a Service without selector.
kubectl apply -f "$ROOT_DIR/manifests/components/custom-metrics/apiservice.yaml" >/dev/null
kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata: {name: emqx-webhook, namespace: emqx-webhook}
spec:
  ports: [{name: custom-metrics, port: 6443, targetPort: $cm_port}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: emqx-webhook-host
  namespace: emqx-webhook
  labels: {kubernetes.io/service-name: emqx-webhook}
addressType: IPv4
endpoints: [{addresses: ["$HOST_ADDR"]}]
ports: [{name: custom-metrics, port: $cm_port}]
EOF
emqx-webhook --kubeconfig "$KUBECONFIG" --namespace emqx-webhook --host 127.0.0.1 --port "$wh_port" --tls-ip 127.0.0.1 \
	--tls-dns-name emqx-webhook.emqx-webhook.svc --custom-metrics-bind-address "$HOST_ADDR:$cm_port" --rebalance-cooldown 5s \
	--cert-dir "$work/certs" --metrics-bind-address 0 --health-probe-bind-address "$wh_health" --leader-elect=false \
	--wait-health-check 5s --wait-takeover 5s --conn-evict-rate 100 --sess-evict-rate 200 --controller-poll 500ms >"$work/emqx-webhook.log" 2>&1 &
wh_pid=$!
until curl -sf "http://$wh_health/readyz" >/dev/null; do sleep 0.2; done
echo "emqx-webhook ready (logs: $work/emqx-webhook.log)"

say "EMQX: 3 pods (Helm chart shape) and 10,000 MQTT clients"
kubectl create ns "$ns" >/dev/null
sed "s/__NAMESPACE__/$ns/g; s/__REPLICAS__/3/g" "$HACK_DIR/fixtures/helm-emqx.yaml" | kubectl apply -f - >/dev/null
run kubectl -n "$ns" rollout status statefulset/emqx --timeout=120s
until curl -sf "http://$sim_admin/sim/v1/stats?cluster=$ns/emqx" | grep -q '"running":true,.*"running":true,.*"running":true'; do sleep 0.2; done
curl -sf -XPOST -d '{"clients":10000}' "http://$sim_admin/sim/v1/connect?cluster=$ns/emqx" >/dev/null
run kubectl emqx status -n "$ns"

say "Scale up to 4: new clients would go to emqx-3, old ones stay where they are"
run kubectl -n "$ns" scale statefulset/emqx --replicas=4
run kubectl -n "$ns" rollout status statefulset/emqx --timeout=120s
sleep 1
run kubectl emqx status -n "$ns"

say "kubectl emqx rebalance: move connections to the new node"
run kubectl emqx rebalance -n "$ns" --abs-conn-threshold 100 --abs-sess-threshold 100 --wait-health-check 5s --wait-takeover 5s --conn-evict-rate 20
run kubectl emqx status -n "$ns"

say "kubectl scale back to 3: the webhook holds emqx-3's deletion until its node is empty"
run kubectl -n "$ns" scale statefulset/emqx --replicas=3
while kubectl -n "$ns" get pod emqx-3 >/dev/null 2>&1; do
	kubectl emqx status -n "$ns" --no-headers | grep '^emqx-3' || true
	sleep 1
done
echo "emqx-3 is gone"
kubectl -n "$ns" get events --field-selector involvedObject.name=emqx-3 -o custom-columns=REASON:.reason,MESSAGE:.message | grep -E 'Evacuation' || true

say "kubectl drain the node of emqx-1: the eviction waits for the evacuation"
node=$(kubectl -n "$ns" get pod emqx-1 -o jsonpath='{.spec.nodeName}')
run kubectl drain "$node" --ignore-daemonsets --delete-emptydir-data --pod-selector app.kubernetes.io/instance=emqx --timeout=180s
run kubectl uncordon "$node"
run kubectl -n "$ns" rollout status statefulset/emqx --timeout=120s

say "emqx-1 came back empty: rebalance again"
run kubectl emqx status -n "$ns"
run kubectl emqx rebalance -n "$ns" --abs-conn-threshold 100 --abs-sess-threshold 100 --wait-health-check 5s --wait-takeover 5s --conn-evict-rate 50

say "Autoscaling: a HorizontalPodAutoscaler on EMQX's connections per pod (custom metrics API)"
run kubectl -n "$ns" annotate statefulset emqx emqx.kubectl-emqx.io/rebalance=auto \
	emqx.kubectl-emqx.io/abs-conn-threshold=100 emqx.kubectl-emqx.io/abs-sess-threshold=100
kubectl apply -f - >/dev/null <<EOF
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: emqx, namespace: $ns}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: StatefulSet, name: emqx}
  minReplicas: 3
  maxReplicas: 5
  metrics:
  - type: Pods
    pods:
      metric: {name: emqx_live_connections}
      target: {type: AverageValue, averageValue: "3000"}
  behavior:
    scaleDown: {stabilizationWindowSeconds: 0}
EOF
echo "HPA emqx: 3 to 5 pods, 3,000 live connections per pod"
# Until the StatefulSet has $1 ready pods and an Event $2 was seen; prints each change.
hpa_watch() {
	local want=$1 line last=
	for ((k = 0; k < 180; k++)); do
		line="$(kubectl -n "$ns" get hpa emqx -o jsonpath='{.status.currentReplicas} {.status.desiredReplicas}' | awk '{printf "%-7s %-7s", $1, $2}') | $(kubectl emqx status -n "$ns" --no-headers | awk '/^emqx-/ {printf "%s=%s ", $1, $5}')"
		[[ $line == "$last" ]] || echo "  $line"
		last=$line
		if [[ $(kubectl -n "$ns" get sts emqx -o jsonpath='{.status.readyReplicas}/{.status.replicas}') == "$want/$want" ]] &&
			kubectl -n "$ns" get events -o jsonpath='{.items[*].reason}' | grep -q "$2"; then
			return 0
		fi
		sleep 1
	done
	echo "the HPA did not reach $want pods" >&2
	return 1
}
echo "4,000 more clients arrive (14,000: the HPA wants 5)"
curl -sf -XPOST -d '{"clients":4000}' "http://$sim_admin/sim/v1/connect?cluster=$ns/emqx" >/dev/null
echo "  CURRENT DESIRED | POD=CONNECTIONS"
hpa_watch 5 RebalanceCompleted
run kubectl -n "$ns" get events --field-selector reason=RebalanceCompleted -o custom-columns=REASON:.reason,MESSAGE:.message
echo "9,000 clients leave for good (5,000 stay: the HPA wants 3)"
curl -sf -XPOST -d '{"clients":9000}' "http://$sim_admin/sim/v1/disconnect?cluster=$ns/emqx" >/dev/null
echo "  CURRENT DESIRED | POD=CONNECTIONS"
hpa_watch 3 NodeLeftCluster
run kubectl -n "$ns" get events --field-selector reason=NodeLeftCluster -o custom-columns=REASON:.reason,MESSAGE:.message

say "The end"
sleep 2
run kubectl emqx status -n "$ns"
stats=$(curl -sf "http://$sim_admin/sim/v1/stats?cluster=$ns/emqx")
lost=$(grep -o '"lost_sessions":[0-9]*' <<<"$stats" | cut -d: -f2)
connected=$(grep -o '"connected_clients":[0-9]*' <<<"$stats" | cut -d: -f2)
echo "clients connected: $connected of 5000 (9,000 left on their own)"
echo "sessions lost: $lost"
[[ $lost == 0 ]]
