// Package monitoring checks the monitoring component (manifests/components/monitoring) with the
// real promtool (Debian's prometheus package; hack/prometheus.sh installs it): the
// PrometheusRule's alerts and the Grafana dashboard's queries parse, and each returns what it
// should on test series (testdata/rules_test.yaml). Every alert and every dashboard query must
// have a test there. Build tag monitoring: `make monitoring-test`, part of `make test`.
package monitoring
