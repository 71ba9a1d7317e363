package cluster

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqxsim"
)

const simNode = "emqx@emqx-0.emqx-headless.mqtt.svc.cluster.local"

// sim59 is a one-node EMQX 5.9 (which locks a dashboard user after 5 failed logins) whose admin
// password was changed in the dashboard to "changed".
func sim59(t *testing.T, start time.Time) (*emqxsim.Cluster, string) {
	t.Helper()
	c, err := emqxsim.New(emqxsim.Config{Version: "5.9.0", Start: start, Users: map[string]string{"admin": "changed"},
		Nodes: []emqxsim.NodeConfig{{Name: simNode}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.Handler(simNode))
	t.Cleanup(srv.Close)
	return c, srv.URL
}

// A program that connects at every retried removal must not lock the dashboard's users out: a
// password EMQX refused is not tried again until it changes.
func TestRefusedPasswordIsNeverRetriedUntilItChanges(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	sim, url := sim59(t, start)
	rejected := &Rejected{Clock: clocktesting.NewFakePassiveClock(start)}
	stale := Access{URL: url, Creds: emqx.Credentials{Username: "admin", Password: "public"}, Rejected: rejected}
	for i := range 20 {
		_, err := Connect(ctx, stale, nil)
		if err == nil {
			t.Fatal("a wrong password was accepted")
		}
		if i > 0 &&
			!strings.Contains(err.Error(), "refused earlier: BAD_USERNAME_OR_PWD; not tried again until it changes") {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if sim.LoginLocked("admin") {
		t.Fatal("20 connections locked the dashboard user admin")
	}
	// The Secret changes: the new password is tried at once, and works.
	fresh := stale
	fresh.Creds.Password = "changed"
	conn, err := Connect(ctx, fresh, nil)
	if err != nil {
		t.Fatalf("the changed password: %v", err)
	}
	conn.Close()

	// Negative control: without the memory, the same 20 connections lock admin out, the right
	// password included.
	sim, url = sim59(t, start)
	for range 20 {
		_, _ = Connect(ctx, Access{URL: url, Creds: emqx.Credentials{Username: "admin", Password: "public"}}, nil)
	}
	if !sim.LoginLocked("admin") {
		t.Fatal("the world cannot show the lockout: 20 failed logins did not lock admin")
	}
	_, err = Connect(ctx, Access{URL: url, Creds: emqx.Credentials{Username: "admin", Password: "changed"}}, nil)
	if err == nil || !strings.Contains(err.Error(), "LOGIN_LOCKED") ||
		!strings.Contains(err.Error(), "locked the dashboard user") {
		t.Fatalf("a locked user: %v, want LOGIN_LOCKED and what to do", err)
	}
}

// A LOGIN_LOCKED refusal holds for EMQX's lock duration, then the credentials are tried again.
func TestLockedLoginIsRetriedAfterTheLock(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	sim, url := sim59(t, start)
	for range 5 {
		_, _ = Connect(ctx, Access{URL: url, Creds: emqx.Credentials{Username: "admin", Password: "public"}}, nil)
	}
	clk := clocktesting.NewFakePassiveClock(start)
	a := Access{
		URL:      url,
		Creds:    emqx.Credentials{Username: "admin", Password: "changed"},
		Rejected: &Rejected{Clock: clk},
	}
	if _, err := Connect(ctx, a, nil); err == nil || !strings.Contains(err.Error(), "(LOGIN_LOCKED)") {
		t.Fatalf("locked: %v", err)
	}
	if _, err := Connect(ctx, a, nil); err == nil || !strings.Contains(err.Error(), "refused earlier: LOGIN_LOCKED") {
		t.Fatalf("within the lock: %v", err)
	}
	clk.SetTime(start.Add(emqx.LoginLockDuration))
	sim.Advance(emqx.LoginLockDuration)
	conn, err := Connect(ctx, a, nil)
	if err != nil {
		t.Fatalf("after the lock: %v", err)
	}
	conn.Close()
}

// A hardened EMQX (6.2.1+) serves its API on the pod's loopback only: the error says so and what
// to set, instead of a bare "connection refused".
func TestUnreachableHardenedDashboardIsExplained(t *testing.T) {
	pod := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "emqx-0", Namespace: "mqtt"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "emqx", Image: "emqx/emqx:6.2.2",
			Env: []corev1.EnvVar{{Name: "EMQX_SECURITY_PROFILE", Value: "hardened"}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "198.18.1.2",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
	closed := httptest.NewServer(nil)
	url := closed.URL
	closed.Close()
	a := Access{Kube: kubefake.NewClientset(), Creds: emqx.Credentials{APIKey: "k", APISecret: "s"},
		Options: []emqx.Option{emqx.WithGETRetries(1, 0)},
		Forward: func(context.Context, *corev1.Pod, int) (string, func(), error) { return url, func() {}, nil }}
	_, err := Connect(context.Background(), a, &Cluster{Name: "emqx", Namespace: "mqtt", Pods: []corev1.Pod{pod}})
	if err == nil || !strings.Contains(err.Error(), "EMQX_SECURITY_PROFILE=hardened") ||
		!strings.Contains(err.Error(), "EMQX_DASHBOARD__LISTENERS__HTTP__BIND=0.0.0.0:18083") {
		t.Fatalf("error %v", err)
	}
}

// What a cluster's refusals leave behind is bounded: a cluster that is gone is forgotten whole,
// and one whose credentials keep changing keeps only its latest refusals.
func TestRefusalsArePrunedAndBounded(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	r := &Rejected{Clock: clk}
	bad := emqx.Credentials{Username: "admin", Password: "wrong"}
	r.remember("mqtt/emqx", bad, emqx.CodeBadUsernameOrPwd)
	r.remember("gone/emqx", bad, emqx.CodeBadUsernameOrPwd)
	r.Prune(map[string]bool{"mqtt/emqx": true})
	if r.refused("gone/emqx", bad) != "" || r.refused("mqtt/emqx", bad) == "" {
		t.Fatal("prune forgot the live cluster's refusal or kept the gone one's")
	}
	for i := range 3 * maxRefusalsPerCluster {
		clk.Step(time.Second)
		r.remember(
			"mqtt/emqx",
			emqx.Credentials{Username: "admin", Password: fmt.Sprint("try-", i)},
			emqx.CodeBadUsernameOrPwd,
		)
	}
	if n := len(r.seen["mqtt/emqx"]); n != maxRefusalsPerCluster {
		t.Fatalf("%d refusals kept for one cluster, want %d", n, maxRefusalsPerCluster)
	}
	if r.refused(
		"mqtt/emqx",
		emqx.Credentials{Username: "admin", Password: fmt.Sprint("try-", 3*maxRefusalsPerCluster-1)},
	) == "" {
		t.Fatal("the latest refusal was forgotten")
	}
}
