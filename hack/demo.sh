#!/usr/bin/env bash
# make demo: the whole story on this machine. A local Kubernetes control plane (built once, ~20
# minutes cold, then cached), a simulated 3-pod EMQX (the Helm chart's shape) carrying 10,000
# clients, the emqx-webhook, then: scale to 4 and `kubectl emqx rebalance`; `kubectl scale` back
# to 3 with the webhook holding the deletion until the node is empty; `kubectl drain` of a node
# the same way, and a rebalance of the node that came back empty; the final status and the
# sessions lost (0). KEEP=1 leaves everything running; a second run removes what it left.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ns=mqtt
sim_admin=127.0.0.1:18999
wh_port=19443
wh_health=127.0.0.1:19081
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
emqx-webhook --kubeconfig "$KUBECONFIG" --namespace emqx-webhook --host 127.0.0.1 --port "$wh_port" --tls-ip 127.0.0.1 \
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

say "The end"
sleep 2
run kubectl emqx status -n "$ns"
stats=$(curl -sf "http://$sim_admin/sim/v1/stats?cluster=$ns/emqx")
lost=$(grep -o '"lost_sessions":[0-9]*' <<<"$stats" | cut -d: -f2)
connected=$(grep -o '"connected_clients":[0-9]*' <<<"$stats" | cut -d: -f2)
echo "clients connected: $connected of 10000"
echo "sessions lost: $lost"
[[ $lost == 0 ]]
