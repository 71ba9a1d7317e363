//go:build dist

package krew

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestDistArtifactsInstallAndRunThroughKubectl runs `make dist`'s script, checks the rendered krew
// manifest and every checksum, then installs the plugin from this platform's archive into a PATH
// directory and runs it through the real kubectl.
func TestDistArtifactsInstallAndRunThroughKubectl(t *testing.T) {
	dist := t.TempDir()
	const version = "v0.1.0-test.1"
	digest := "sha256:" + strings.Repeat("0a", 32)
	cmd := exec.Command(filepath.Join("..", "hack", "dist.sh"), version)
	cmd.Env = append(os.Environ(), "DIST_DIR="+dist, "IMAGE_DIGEST="+digest)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/dist.sh: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(dist, "emqx.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := validate(filepath.Join(dist, "emqx.yaml"), raw)
	if err != nil {
		t.Fatalf("the rendered manifest breaks krew's rules: %v\n%s", err, raw)
	}
	if m.Spec.Version != version {
		t.Fatalf("manifest version %s", m.Spec.Version)
	}
	var mine string
	for _, p := range m.Spec.Platforms {
		name := p.URI[strings.LastIndex(p.URI, "/")+1:]
		b, err := os.ReadFile(filepath.Join(dist, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != p.SHA256 {
			t.Fatalf("%s: checksum differs from the manifest", name)
		}
		if p.Selector.MatchLabels["os"] == runtime.GOOS && p.Selector.MatchLabels["arch"] == runtime.GOARCH {
			mine = filepath.Join(dist, name)
		}
	}
	sums, _ := os.ReadFile(filepath.Join(dist, "checksums.txt"))
	for _, want := range []string{
		"emqx-webhook_" + version + "_linux_amd64.tar.gz",
		"kubectl-emqx_" + version + "_windows_arm64.zip",
	} {
		if !strings.Contains(string(sums), want) {
			t.Fatalf("checksums.txt lacks %s", want)
		}
	}
	if mine == "" {
		t.Fatalf("no archive for %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	checkStampedInstall(t, dist, version, digest, string(sums))
	bin := t.TempDir()
	files := untar(t, mine, bin)
	for _, f := range []string{"kubectl-emqx", "LICENSE", "README.md", "kubectl_complete-emqx"} {
		if !files[f] {
			t.Fatalf("the archive lacks %s (has %v)", f, files)
		}
	}
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatal("kubectl is not on PATH; the install test runs the plugin through it")
	}
	run := exec.Command(kubectl, "emqx", "version")
	run.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	out, err := run.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "kubectl-emqx "+version+" ") {
		t.Fatalf("kubectl emqx version: %v %q", err, out)
	}
	checkCompletionCaveat(t, kubectl, string(raw), filepath.Join(bin, "kubectl-emqx"))
}

// checkCompletionCaveat installs the plugin as krew does (only kubectl-emqx linked into
// ~/.krew/bin), shows that kubectl then completes nothing of it, runs the line the manifest's
// caveats give, and shows that kubectl then completes the plugin's commands.
func checkCompletionCaveat(t *testing.T, kubectl, manifest, plugin string) {
	t.Helper()
	var line string
	for _, l := range strings.Split(manifest, "\n") {
		if strings.Contains(l, "kubectl_complete-emqx") {
			line = strings.TrimSpace(l)
		}
	}
	if line == "" {
		t.Fatal("the krew manifest's caveats give no line that enables completion")
	}
	home := t.TempDir()
	krewBin := filepath.Join(home, ".krew", "bin")
	if err := os.MkdirAll(krewBin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(plugin, filepath.Join(krewBin, "kubectl-emqx")); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "HOME="+home, "PATH="+krewBin+":"+os.Getenv("PATH"))
	complete := func() string {
		c := exec.Command(kubectl, "__complete", "emqx", "st")
		c.Env = env
		out, _ := c.CombinedOutput()
		return string(out)
	}
	if out := complete(); strings.Contains(out, "status") {
		t.Fatalf("kubectl completes the plugin before the caveat's line ran: the test shows nothing\n%s", out)
	}
	sh := exec.Command("sh", "-c", line)
	sh.Env = env
	if out, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("the caveat's line %q: %v\n%s", line, err, out)
	}
	if out := complete(); !strings.Contains(out, "status") {
		t.Fatalf("after the caveat's line, kubectl __complete emqx st: %q", out)
	}
}

func untar(t *testing.T, archive, dir string) map[string]bool {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	files := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := filepath.Base(h.Name)
		out, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY, os.FileMode(h.Mode))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, tr); err != nil {
			t.Fatal(err)
		}
		out.Close()
		files[name] = true
	}
}

// checkStampedInstall: the release's webhook install and packaged chart deploy the image of this
// version by digest, never :latest, and the chart carries the version.
func checkStampedInstall(t *testing.T, dist, version, digest, sums string) {
	t.Helper()
	ref := "ghcr.io/kubectl-emqx/emqx-webhook:" + version + "@" + digest
	install, err := os.ReadFile(filepath.Join(dist, "emqx-webhook.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(install), "image: "+ref+"\n") || strings.Contains(string(install), ":latest") {
		t.Fatalf("emqx-webhook.yaml does not deploy %s alone", ref)
	}
	chart := filepath.Join(dist, "emqx-webhook-"+strings.TrimPrefix(version, "v")+".tgz")
	helm, err := exec.Command(filepath.Join("..", "hack", "tools.sh")).Output()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(strings.TrimSpace(string(helm)), "helm"), "template", "x", chart,
		"--kube-version", "1.36.3", "--set", "networkPolicy.admissionFrom={198.18.0.1/32}").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "image: "+ref+"\n") || strings.Contains(string(out), ":latest") {
		t.Fatalf("the packaged chart does not deploy %s: %v\n%s", ref, err, out)
	}
	for _, f := range []string{"emqx-webhook.yaml", filepath.Base(chart)} {
		if !strings.Contains(sums, f) {
			t.Fatalf("checksums.txt lacks %s", f)
		}
	}
}
