package app

import (
	"testing"

	"github.com/spf13/pflag"
)

// parse is what the main does with args, short of Run.
func parse(args []string) (*Options, error) {
	o := NewOptions()
	fs := pflag.NewFlagSet("emqx-webhook", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := o.Complete(); err != nil {
		return nil, err
	}
	return o, o.Validate()
}

// Metrics are HTTPS with authentication and authorization by default; plain HTTP only on loopback
// unless an address is given.
func TestMetricsAreSecureByDefaultAndPlainOnlyOnLoopback(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		addr   string
		secure bool
	}{
		{nil, ":8443", true},
		{[]string{"--metrics-secure=false"}, "127.0.0.1:8080", false},
		{[]string{"--metrics-secure=false", "--metrics-bind-address", ":9090"}, ":9090", false},
		{[]string{"--metrics-bind-address", "0"}, "0", true},
	} {
		o, err := parse(append([]string{"--namespace", "emqx-webhook"}, tc.args...))
		if err != nil {
			t.Fatal(err)
		}
		m := o.metricsOptions()
		if m.BindAddress != tc.addr || m.SecureServing != tc.secure || (m.FilterProvider != nil) != tc.secure {
			t.Errorf(
				"%v: address %q secure %v filter %v",
				tc.args,
				m.BindAddress,
				m.SecureServing,
				m.FilterProvider != nil,
			)
		}
	}
}

// Bad flags are refused with a message that names them.
func TestBadFlagsAreRefused(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "")
	for _, args := range [][]string{
		{"--namespace", "x", "--abandon-after", "0s"},
		{"--namespace", "x", "--access-check-interval", "1s"},
		{"--namespace", "x", "--decision-timeout", "9s"},
		{"--namespace", "x", "--emqx-shared-reads", "10s"},
		{"--namespace", "x", "--emqx-shared-reads", "-1s"},
		{"--namespace", "x", "--custom-metrics-bind-address", "6443"},
		{"--namespace", "x", "--custom-metrics-bind-address", "localhost:6443"},
		{"--namespace", "x", "--custom-metrics-bind-address", ":0"},
		{"--namespace", "x", "--client-cert-name", "kube-apiserver"},
		{"--namespace", "x", "--watch-namespace", "mqtt/emqx"},
		{"--namespace", "x", "--client-ca-file", "/nonexistent/ca.crt"},
		{"--namespace", "x", "--client-ca-file", "options_test.go"},
		{"--namespace", "x", "--tls-ip", "not-an-ip"},
		{"--namespace", "x", "--wait-takeover", "soon"},
		{"--namespace", "x", "--zap-log-level", "loud"},
		{},
	} {
		if _, err := parse(args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

// --watch-namespace narrows the cache to those namespaces; without it, every namespace is read.
func TestWatchNamespacesNarrowTheCache(t *testing.T) {
	o, err := parse([]string{"--namespace", "emqx-webhook", "--watch-namespace", "mqtt", "--watch-namespace", "iot"})
	if err != nil {
		t.Fatal(err)
	}
	got := o.cacheOptions().DefaultNamespaces
	_, mqtt := got["mqtt"]
	_, iot := got["iot"]
	if len(got) != 2 || !mqtt || !iot {
		t.Fatalf("cache namespaces %v", got)
	}
	if o, _ := parse([]string{"--namespace", "emqx-webhook"}); o.cacheOptions().DefaultNamespaces != nil {
		t.Fatal("without --watch-namespace the cache is narrowed")
	}
}

// The log level is a flag (controller-runtime's zap options), and an empty value turns client
// authentication off again (as the e2e does after the default).
func TestLogLevelAndClientAuthFlags(t *testing.T) {
	o, err := parse(
		[]string{
			"--namespace",
			"emqx-webhook",
			"--zap-log-level",
			"debug",
			"--client-ca-file",
			"x",
			"--client-ca-file=",
		},
	)
	if err != nil {
		t.Fatal(err)
	}
	if o.Log.Level == nil || o.clientAuth != nil {
		t.Fatalf("log level %v, client auth %v", o.Log.Level, o.clientAuth != nil)
	}
}
