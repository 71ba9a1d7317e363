//go:build e2e

// Package e2e holds the end-to-end tests: a real kube-apiserver, controllers and kwok (started by
// hack/cluster-up.sh), simulated EMQX nodes following the pods (emqx-sim follow), and the real
// kubectl. Run with `make e2e`. If the cluster cannot be started the run fails; it never skips.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/e2e-framework/pkg/env"
)

var (
	testenv    env.Environment
	repoRoot   string
	kubeconfig string
	binDir     string
	kubectl    string // the kubectl users run: the one on PATH, else the pinned build
	simAdmin   string // http://host:port of emqx-sim's /sim/v1 API
	logDir     string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	var err error
	if repoRoot, err = filepath.Abs(filepath.Join("..", "..")); err != nil {
		return fail("%v", err)
	}
	if logDir, err = os.MkdirTemp("", "kemqx-e2e-"); err != nil {
		return fail("%v", err)
	}
	wasUp := clusterReady()
	// With the real node (kubelet and containerd): the shipped Deployment runs there.
	up := exec.Command(filepath.Join(repoRoot, "hack", "cluster-up.sh"))
	up.Env = append(os.Environ(), "REAL_NODE=1")
	up.Stderr = os.Stderr
	out, err := up.Output()
	if err != nil {
		return fail(
			"cannot start the local cluster (hack/cluster-up.sh: %v); the e2e tests need it and are not skipped",
			err,
		)
	}
	kubeconfig = strings.TrimSpace(lastLine(string(out)))
	if !wasUp && os.Getenv("KEEP_CLUSTER") != "1" {
		defer func() {
			down := exec.Command(filepath.Join(repoRoot, "hack", "cluster-down.sh"))
			down.Stderr = os.Stderr
			_ = down.Run()
		}()
	}
	if binDir, err = os.MkdirTemp("", "kemqx-bin-"); err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(binDir)
	build := exec.Command("go", "build", "-o", binDir+"/", "./cmd/...")
	build.Dir, build.Stdout, build.Stderr = repoRoot, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fail("build the binaries: %v", err)
	}
	complete, err := os.ReadFile(filepath.Join(repoRoot, "krew", "kubectl_complete-emqx"))
	if err == nil {
		err = os.WriteFile(filepath.Join(binDir, "kubectl_complete-emqx"), complete, 0o755)
	}
	if err != nil {
		return fail("install the completion script: %v", err)
	}
	if kubectl, err = exec.LookPath("kubectl"); err != nil {
		kubectl = filepath.Join(controlPlaneBin(), "kubectl")
	}
	stopSim, err := startSim()
	if err != nil {
		return fail("start emqx-sim follow: %v (log: %s)", err, filepath.Join(logDir, "emqx-sim.log"))
	}
	defer stopSim()
	fmt.Fprintf(os.Stderr, "e2e: kubeconfig %s, kubectl %s, logs in %s\n", kubeconfig, kubectl, logDir)
	testenv = env.NewWithKubeConfig(kubeconfig)
	return testenv.Run(m)
}

func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "e2e: "+format+"\n", args...)
	return 1
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func clusterReady() bool {
	script := `source "$0/hack/lib.sh" && test -f "$STATE_DIR/ready" &&
		"$CONTROLPLANE_BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" get --raw /readyz`
	out, err := exec.Command("bash", "-c", script, repoRoot).CombinedOutput()
	return err == nil && strings.Contains(string(out), "ok")
}

func controlPlaneBin() string {
	out, _ := exec.Command("bash", "-c", `source "$0/hack/lib.sh" && echo "$CONTROLPLANE_BIN"`, repoRoot).Output()
	return strings.TrimSpace(string(out))
}

// webhookClientDir holds the API server's client certificate for webhooks and its CA
// (hack/cluster-up.sh makes them and the AdmissionConfiguration that presents it).
func webhookClientDir() string {
	out, _ := exec.Command("bash", "-c", `source "$0/hack/lib.sh" && echo "$WEBHOOK_CLIENT_DIR"`, repoRoot).Output()
	return strings.TrimSpace(string(out))
}

// startSim runs `emqx-sim follow` on the cluster, with its simulator API on a free loopback port.
func startSim() (func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	logf, err := os.Create(filepath.Join(logDir, "emqx-sim.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(binDir, "emqx-sim"), "follow", "--kubeconfig", kubeconfig, "--netns", "kemqx",
		"--admin", addr, "--time-scale", "10", "--data-dir", filepath.Join(logDir, "emqx-data"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
		}
		logf.Close()
	}
	simAdmin = "http://" + addr
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if resp, err := http.Get(simAdmin + "/sim/v1/clusters"); err == nil {
			resp.Body.Close()
			return stop, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	sc := bufio.NewScanner(strings.NewReader(readFile(filepath.Join(logDir, "emqx-sim.log"))))
	for sc.Scan() {
		fmt.Fprintln(os.Stderr, "  "+sc.Text())
	}
	return nil, fmt.Errorf("its API at %s never answered", simAdmin)
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}
