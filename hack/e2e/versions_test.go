//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/e2e-framework/klient/k8s"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// EMQX releases whose numbers mean something else than 5.3's (the webhook guide,
// manifests/helm/emqx-webhook/README.md, "EMQX versions"): the simulated EMQX plays the release
// of the pod's image tag and the durable_sessions setting of its environment, as EMQX does.

// release sets the EMQX image's tag and adds environment variables to the fixture's StatefulSet.
func release(tag string, env ...corev1.EnvVar) func(k8s.Object) {
	return func(obj k8s.Object) {
		sts, ok := obj.(*appsv1.StatefulSet)
		if !ok {
			return
		}
		c := &sts.Spec.Template.Spec.Containers[0]
		c.Image = "emqx/emqx:" + tag
		c.Env = append(c.Env, env...)
	}
}

var durableSessionsOn = corev1.EnvVar{Name: "EMQX_DURABLE_SESSIONS__ENABLE", Value: "true"}

// releaseCluster is a Helm-shaped EMQX of the given release in a namespace the webhook watches.
func releaseCluster(t *testing.T, cfg *envconf.Config, n int, mutate func(k8s.Object)) string {
	t.Helper()
	ns := newNamespace(t, cfg)
	labelWatched(t, cfg, ns)
	applyFixtureWith(t, cfg, "helm-emqx.yaml", ns, n, mutate)
	waitPods(t, cfg, ns, helmSelector, n)
	simNodesReady(t, ns+"/emqx", n)
	return ns
}

// With durable sessions on (6.x), EMQX counts every disconnected durable session of the cluster in
// each evacuation, so its own "done" (prohibiting, 0 sessions) never comes while devices are
// offline. A drain, a scale-down and `kubectl emqx evacuate` finish at EMQX's eviction pace
// anyway; the negative control shows, on the same world, EMQX's rule still unmet afterwards.
func TestDurableSessionsDrainAndScaleDownFinishAtEMQXsPace(t *testing.T) {
	f := features.New("EMQX 6.2 with durable sessions").
		Assess("drain, scale-down, evacuate",
			func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
				installWebhook(t, cfg)
				ns := releaseCluster(t, cfg, 3, release("6.2.2", durableSessionsOn))
				cluster := ns + "/emqx"
				connectClients(t, cluster, 5000)
				// Devices that sleep: their durable sessions wait in durable storage, on no node.
				sim(
					t,
					http.MethodPost,
					"/sim/v1/disconnect",
					cluster,
					map[string]any{"clients": 1000, "keep_session": true},
				)
				if s := simStats(t, cluster); s.DurableSessions != 1000 {
					t.Fatalf("durable sessions offline: %d, want 1000", s.DurableSessions)
				}
				time.Sleep(time.Second) // EMQX's bookkeeper counts them every 5 s (0.5 s here)

				pod, err := clientset(t, cfg).CoreV1().Pods(ns).Get(ctx, "emqx-1", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				node := pod.Spec.NodeName
				t.Cleanup(func() { _, _ = runKubectlErr("uncordon", node) })
				start := time.Now()
				out := runKubectl(
					t,
					"drain",
					node,
					"--ignore-daemonsets",
					"--delete-emptydir-data",
					"--timeout=120s",
					"--pod-selector",
					helmSelector,
				)
				took := time.Since(start)
				if !strings.Contains(out, "drained") {
					t.Fatalf("kubectl drain did not finish:\n%s", out)
				}
				// EMQX's pace here: 2 s + ~1700 connections at 200/s + 2 s, simulated 10× faster; the
				// webhook's time limit is 30 min.
				if took > 60*time.Second {
					t.Fatalf("the drain took %v: it waited for something other than EMQX's eviction", took)
				}
				t.Logf("drain with 1000 durable sessions offline: %v", took.Round(100*time.Millisecond))
				done := events(t, cfg, ns, "EvacuationCompleted")
				if len(done) == 0 || len(events(t, cfg, ns, "EvacuationTimedOut")) != 0 {
					t.Fatalf("want EvacuationCompleted and no time-out: %v", done)
				}
				waitPods(t, cfg, ns, helmSelector, 3)
				expectNothingLost(t, ns, 4000)

				out = runKubectl(t, "-n", ns, "scale", "statefulset/emqx", "--replicas=2")
				if !strings.Contains(out, "evacuated before they are removed") {
					t.Fatalf("no admission warning:\n%s", out)
				}
				eventually(t, 60*time.Second, "emqx-2 gone", func() bool {
					_, err := clientset(t, cfg).CoreV1().Pods(ns).Get(ctx, "emqx-2", metav1.GetOptions{})
					return apierrors.IsNotFound(err)
				})
				expectNothingLost(t, ns, 4000)

				// The plugin judges alike, and says what EMQX's count is.
				out = mustEMQX(
					t,
					"evacuate",
					"pod",
					"emqx-0",
					"-n",
					ns,
					"--wait-health-check",
					"2s",
					"--wait-takeover",
					"2s",
					"--conn-evict-rate",
					"500",
					"--timeout",
					"60s",
				)
				if !strings.Contains(out, "evacuated: emqx-0 is empty") {
					t.Fatalf("evacuate:\n%s", out)
				}
				// Negative control: EMQX's own rule is still not met, and would not be for as long as a
				// durable session stays offline: the old rule would have held every removal to its limit.
				pods := waitPods(t, cfg, ns, helmSelector, 2)
				gs, err := nodeClient(t, pods[1], helmDashboard).GlobalStatus(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if len(gs.Evacuations) != 1 || gs.Evacuations[0].Done() ||
					gs.Evacuations[0].Stats.CurrentSessions < 1000 {
					t.Fatalf("EMQX's own evacuation document: %+v, "+
						"want not done, counting the 1000 offline durable sessions", gs.Evacuations)
				}
				status := mustEMQX(t, "status", "-n", ns)
				if !strings.Contains(status, "evacuated") {
					t.Fatalf("status does not call emqx-0 evacuated:\n%s", status)
				}
				mustEMQX(t, "evacuate", "stop", "emqx-0", "-n", ns)
				expectNothingLost(t, ns, 4000)
				return ctx
			}).
		Feature()
	testenv.Test(t, f)
}

// From 5.9 five failed logins in five minutes lock a dashboard user for ten. A password changed in
// the dashboard leaves the webhook with a stale one: it must not lock the humans out while every
// drain retry asks again, and it must pick the new one up when its Secret changes.
func TestChangedDashboardPasswordNeverLocksTheUser(t *testing.T) {
	f := features.New("EMQX 6.2, dashboard password changed").
		Assess("no LOGIN_LOCKED", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			installWebhook(t, cfg, "--api-unreachable-grace", "10m")
			cs := clientset(t, cfg)
			ns := newNamespace(t, cfg)
			labelWatched(t, cfg, ns)
			secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "emqx-dashboard", Namespace: ns},
				StringData: map[string]string{"password": helmDashboard.Password}}
			if _, err := cs.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			fromSecret := corev1.EnvVar{Name: "EMQX_DASHBOARD__DEFAULT_PASSWORD", ValueFrom: &corev1.EnvVarSource{
				SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: "emqx-dashboard"},
					Key:                  "password",
				}}}
			applyFixtureWith(t, cfg, "helm-emqx.yaml", ns, 3, func(obj k8s.Object) {
				release("6.2.2")(obj)
				if sts, ok := obj.(*appsv1.StatefulSet); ok {
					env := sts.Spec.Template.Spec.Containers[0].Env
					for i := range env {
						if env[i].Name == fromSecret.Name {
							env[i] = fromSecret
						}
					}
				}
			})
			pods := waitPods(t, cfg, ns, helmSelector, 3)
			simNodesReady(t, ns+"/emqx", 3)
			cluster := ns + "/emqx"
			connectClients(t, cluster, 1500)
			// Someone changes the admin password in the dashboard (EMQX's own API).
			changePassword(t, pods[0], helmDashboard.Password, "changed-in-the-dashboard")

			pod, err := cs.CoreV1().Pods(ns).Get(ctx, "emqx-1", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			node := pod.Spec.NodeName
			t.Cleanup(func() { _, _ = runKubectlErr("uncordon", node) })
			out, err := runKubectlErr(
				"drain",
				node,
				"--ignore-daemonsets",
				"--delete-emptydir-data",
				"--timeout=30s",
				"--pod-selector",
				helmSelector,
			)
			if err == nil || !strings.Contains(out, "not tried again until it changes") {
				t.Fatalf("a drain with a stale password was not held with the reason:\n%s", out)
			}
			if s := simStats(t, cluster); len(s.LockedUsers) != 0 {
				t.Fatalf("the webhook's retries locked the dashboard users %v out", s.LockedUsers)
			}
			// The Secret follows the change: the webhook tries the new password at once.
			secret.StringData["password"] = "changed-in-the-dashboard"
			if _, err := cs.CoreV1().Secrets(ns).Update(ctx, secret, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			out = runKubectl(
				t,
				"drain",
				node,
				"--ignore-daemonsets",
				"--delete-emptydir-data",
				"--timeout=120s",
				"--pod-selector",
				helmSelector,
			)
			if !strings.Contains(out, "drained") || len(events(t, cfg, ns, "EvacuationCompleted")) == 0 {
				t.Fatalf("the drain did not go through the evacuation with the new password:\n%s", out)
			}
			if s := simStats(t, cluster); len(s.LockedUsers) != 0 {
				t.Fatalf("locked: %v", s.LockedUsers)
			}
			waitPods(t, cfg, ns, helmSelector, 3)
			expectNothingLost(t, ns, 1500)
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// changePassword changes the dashboard's admin password as a person does: log in, then
// POST /api/v5/users/admin/change_pwd.
func changePassword(t *testing.T, pod corev1.Pod, old, updated string) {
	t.Helper()
	base := "http://" + pod.Status.PodIP + ":18083/api/v5"
	post := func(path, token string, body any) *http.Response {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := post("/login", "", map[string]string{"username": "admin", "password": old})
	var login struct {
		Token string `json:"token"`
	}
	err := json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	if err != nil || login.Token == "" {
		t.Fatalf("login: %d %v", resp.StatusCode, err)
	}
	resp = post("/users/admin/change_pwd", login.Token, map[string]string{"old_pwd": old, "new_pwd": updated})
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("change_pwd: %d", resp.StatusCode)
	}
	if _, err := nodeClient(t, pod, emqx.Credentials{
		Username: "admin",
		Password: updated,
	}).Nodes(context.Background()); err != nil {
		t.Fatalf("the new password: %v", err)
	}
}

// spreadReplicas puts every durable DB's replicas on every site, as emqx-operator 2.3 does for
// its cores (EMQX itself allocates them on the first site only), and waits until they are there.
func spreadReplicas(t *testing.T, c *emqx.Client) []string {
	t.Helper()
	ctx := context.Background()
	sites, err := c.Sites(ctx)
	if err != nil || len(sites) != 3 {
		t.Fatalf("durable-storage sites: %v %v", sites, err)
	}
	dbs, err := c.Storages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, db := range dbs {
		if err := c.SetReplicaSites(ctx, db, sites); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, "replicas on every site", func() bool {
		for _, id := range sites {
			s, err := c.Site(ctx, id)
			if err != nil || len(s.Shards) == 0 {
				return false
			}
			for _, sh := range s.Shards {
				if sh.Transition != "" {
					return false
				}
			}
		}
		return true
	})
	return sites
}

// A core that leaves for good on 6.x with durable storage: its shard replicas move to the cores
// that stay before its pod goes, and its site is forgotten with the node. The negative control,
// the same scale-down unguarded, leaves replicas on a site whose node is gone.
func TestCoreScaleDownMovesDurableStorageReplicasFirst(t *testing.T) {
	f := features.New("EMQX 6.2 durable storage").
		Assess("scale 3→2", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			installWebhook(t, cfg)
			cs := clientset(t, cfg)
			ns := releaseCluster(t, cfg, 3, release("6.2.2", durableSessionsOn))
			// The negative control beside it, in a namespace the webhook does not guard.
			unguarded := newNamespace(t, cfg)
			applyFixtureWith(t, cfg, "helm-emqx.yaml", unguarded, 3, release("6.2.2", durableSessionsOn))
			controls := waitPods(t, cfg, unguarded, helmSelector, 3)
			pods := waitPods(t, cfg, ns, helmSelector, 3)
			eventually(t, 10*time.Second, "simulated nodes", func() bool {
				return len(simStats(t, unguarded+"/emqx").Nodes) == 3 && len(simStats(t, ns+"/emqx").Nodes) == 3
			})
			c := nodeClient(t, pods[0], helmDashboard)
			sites := spreadReplicas(t, c)
			spreadReplicas(t, nodeClient(t, controls[0], helmDashboard))
			connectClients(t, ns+"/emqx", 1500)

			runKubectl(t, "-n", ns, "scale", "statefulset/emqx", "--replicas=2")
			runKubectl(t, "-n", unguarded, "scale", "statefulset/emqx", "--replicas=2")
			eventually(t, 90*time.Second, "emqx-2 gone", func() bool {
				_, err := cs.CoreV1().Pods(ns).Get(ctx, "emqx-2", metav1.GetOptions{})
				return apierrors.IsNotFound(err)
			})
			if len(events(t, cfg, ns, "DurableStorageReplicasMoving")) == 0 {
				t.Fatal("no DurableStorageReplicasMoving event: the pod went without its replicas being moved")
			}
			if s := simStats(t, ns+"/emqx"); s.ReplicasDown != 0 {
				t.Fatalf("%d shard replicas were left on the removed core's site", s.ReplicasDown)
			}
			expectNothingLost(t, ns, 1500)
			eventually(t, 40*time.Second, "the removed core's site forgotten", func() bool {
				left, err := c.Sites(ctx)
				return err == nil && len(left) == 2 && len(events(t, cfg, ns, "DurableStorageSiteForgotten")) == 1
			})
			if left, _ := c.Sites(ctx); len(left) != 2 || len(sites) != 3 {
				t.Fatalf("sites %v after the scale-down, of %v", left, sites)
			}

			eventually(t, 30*time.Second, "the unguarded emqx-2 gone", func() bool {
				_, err := cs.CoreV1().Pods(unguarded).Get(ctx, "emqx-2", metav1.GetOptions{})
				return apierrors.IsNotFound(err)
			})
			if s := simStats(t, unguarded+"/emqx"); s.ReplicasDown == 0 {
				t.Fatal("negative control: the unguarded scale-down left no replica behind; " +
					"this world cannot show the loss")
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// EMQX before 5.8.4 can loop for ever on a session whose process died: the evacuation stays in
// evicting_sessions with a count that never moves. The webhook reports it (a Warning Event, the
// hold's message, kubectl emqx status) long before its time limit lets the pod go.
func TestStalledSessionEvictionIsReportedBeforeTheTimeLimit(t *testing.T) {
	f := features.New("EMQX 5.8.3, a lost session").
		Assess("stalled, then the time limit",
			func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
				installWebhook(t, cfg, "--stall-after", "5s", "--evacuation-timeout", "45s")
				ns := releaseCluster(t, cfg, 3, release("5.8.3"))
				cluster := ns + "/emqx"
				connectClients(t, cluster, 900)
				node := "emqx@emqx-1.emqx-headless." + ns + ".svc.cluster.local"
				sim(t, http.MethodPost, "/sim/v1/nodes/"+node+"/lost-sessions", cluster, map[string]any{"sessions": 2})
				pod, err := clientset(t, cfg).CoreV1().Pods(ns).Get(ctx, "emqx-1", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _, _ = runKubectlErr("uncordon", pod.Spec.NodeName) })
				done := make(chan string, 1)
				go func() {
					out, _ := runKubectlErr(
						"drain",
						pod.Spec.NodeName,
						"--ignore-daemonsets",
						"--delete-emptydir-data",
						"--timeout=120s",
						"--pod-selector",
						helmSelector,
					)
					done <- out
				}()
				eventually(
					t,
					40*time.Second,
					"a SessionEvictionStalled Event",
					func() bool { return len(events(t, cfg, ns, "SessionEvictionStalled")) > 0 },
				)
				status := mustEMQX(t, "status", "-n", ns)
				if !strings.Contains(status, "(stalled)") {
					t.Fatalf("status does not show the stalled eviction:\n%s", status)
				}
				if len(events(t, cfg, ns, "EvacuationTimedOut")) != 0 {
					t.Fatal("the time limit came before the stall was reported")
				}
				out := <-done
				if !strings.Contains(out, "have not moved for") || !strings.Contains(out, "drained") {
					t.Fatalf("the drain did not show the stall, or did not end at the time limit:\n%s", out)
				}
				if len(events(t, cfg, ns, "EvacuationTimedOut")) == 0 {
					t.Fatal("no EvacuationTimedOut: the pod went another way")
				}
				return ctx
			}).
		Feature()
	testenv.Test(t, f)
}
