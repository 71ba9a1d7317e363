#!/usr/bin/env bash
# chart-testing's lint of the Helm chart (make chart-lint): ct lint, pinned in hack/tools, runs
# helm lint with the chart's values and with each ci/*-values.yaml (the scenarios we ship), and
# yamllint (Debian's package, installed when missing) on Chart.yaml and values.yaml with ct's own
# lint rules. Not run: ct's Chart.yaml schema check, which needs yamale (a Python tool neither
# Debian nor any registry reachable here ships; values.schema.json and helm lint cover the values),
# the maintainers check (GitHub's API) and the version-increment check (a remote branch).
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
if ! command -v yamllint >/dev/null; then
	command -v apt-get >/dev/null || { echo "yamllint is missing: install it (Debian: apt-get install yamllint)" >&2; exit 1; }
	echo "installing Debian's yamllint" >&2
	sudo=""
	[[ $(id -u) == 0 ]] || sudo=sudo
	$sudo apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends yamllint >&2
fi
bin=$("$HACK_DIR/tools.sh")
etc=$(cd "$HACK_DIR/tools" && go list -m -f '{{.Dir}}' github.com/helm/chart-testing/v3)/etc
ctlint() {
	PATH=$bin:$PATH ct lint --charts "$1" --lint-conf "$etc/lintconf.yaml" --chart-yaml-schema "$etc/chart_schema.yaml" \
		--validate-chart-schema=false --validate-maintainers=false --check-version-increment=false 2>&1 |
		grep -v 'found symbolic link in path' # the chart's files/ link the kustomize bases: meant
	return "${PIPESTATUS[0]}"
}
chart=$HACK_DIR/../manifests/helm/emqx-webhook
ctlint "$chart"
# Negative controls: the same lint must refuse a copy whose values.yaml yamllint rejects (a key
# given twice), and one with a scenario the values schema rejects.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for broken in duplicate-key mistyped-value; do
	cp -rL "$chart" "$tmp/$broken"
	case $broken in
	duplicate-key) printf 'replicas: 3\n' >>"$tmp/$broken/values.yaml" ;;
	mistyped-value) printf 'replicas: two\n' >"$tmp/$broken/ci/mistyped-values.yaml" ;;
	esac
	if ctlint "$tmp/$broken" >"$tmp/$broken.log"; then
		echo "chart-lint: ct lint accepted a chart with a $broken; it checks nothing" >&2
		exit 1
	fi
	echo "chart-lint: a chart with a $broken is refused, as it must be"
done
