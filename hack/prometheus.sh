#!/usr/bin/env bash
# Makes sure Debian's prometheus package (prometheus and promtool, a real Prometheus) is installed,
# installing it with apt-get when it is not; prints the directory of its binaries. The monitoring
# tests (hack/monitoring, and the e2e scrape) use it. PROMETHEUS_BIN overrides the directory.
set -euo pipefail
dir=${PROMETHEUS_BIN:-/usr/bin}
if [[ ! -x $dir/promtool || ! -x $dir/prometheus ]]; then
	if [[ -n ${PROMETHEUS_BIN:-} ]] || ! command -v apt-get >/dev/null; then
		echo "prometheus and promtool are not in $dir: install Debian's prometheus package, or set PROMETHEUS_BIN" >&2
		exit 1
	fi
	echo "installing Debian's prometheus package (prometheus, promtool)" >&2
	sudo=""
	[[ $(id -u) == 0 ]] || sudo=sudo
	$sudo apt-get update -qq >&2
	# The package's service is not started: policy-rc.d or no init system; nothing listens.
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >&2
fi
echo "$dir"
