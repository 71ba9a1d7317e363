#!/usr/bin/env bash
# Renders hack/fixtures/helm-chart.yaml from the EMQX Helm chart (emqx/emqx,
# deploy/charts/emqx-enterprise), with the helm of hack/tools.
#
# Usage: hack/render-helm-fixture.sh CHART_DIR
# The chart is not part of this repository: pass a checkout of it. Tests fill in __NAMESPACE__ and
# __REPLICAS__.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
chart=${1:?usage: hack/render-helm-fixture.sh CHART_DIR (deploy/charts/emqx-enterprise of an emqx/emqx checkout)}
[[ -f $chart/Chart.yaml ]] || die "$chart has no Chart.yaml: pass the chart directory (deploy/charts/emqx-enterprise)"
TOOLS=$("$HACK_DIR/tools.sh")
version=$(awk '/^version:/ {print $2}' "$chart/Chart.yaml")
out=$ROOT_DIR/hack/fixtures/helm-chart.yaml
{
	cat <<HEADER
# The EMQX Helm chart's objects (chart $version), rendered by hack/render-helm-fixture.sh with
#   helm template emqx <chart> -n __NAMESPACE__ --set replicaCount=__REPLICAS__ \\
#     --set emqxConfig.EMQX_DASHBOARD__DEFAULT_PASSWORD=kemqx-dashboard-pw
# Release "emqx": fullname emqx-emqx-enterprise; EMQX_NAME and the dashboard user come from the
# ConfigMap the pods load with envFrom; EMQX names its nodes
#   emqx-emqx-enterprise@emqx-emqx-enterprise-N.emqx-emqx-enterprise-headless.<ns>.svc.cluster.local
# (the host from /etc/hosts, as the entrypoint derives it). Do not edit: render again.
HEADER
	"$TOOLS/helm" template emqx "$chart" -n __NAMESPACE__ --set replicaCount=__REPLICAS__ \
		--set emqxConfig.EMQX_DASHBOARD__DEFAULT_PASSWORD=kemqx-dashboard-pw |
		# Keep only documents that are objects (templates that render nothing leave empty ones).
		awk 'function flush() { if (doc ~ /\nkind: /) { printf "%s%s", sep, doc; sep = "---\n" } doc = "\n" }
			BEGIN { doc = "\n" } /^---$/ { flush(); next } { doc = doc $0 "\n" } END { flush() }' | sed '1{/^$/d}'
} >"$out"
log "wrote $out"
