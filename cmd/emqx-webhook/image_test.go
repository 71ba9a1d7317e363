//go:build dist

package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// image runs `make image` and returns the tarball's files by name.
func image(t *testing.T) map[string][]byte {
	t.Helper()
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	cmd := exec.Command("make", "image", "VERSION=v0.0.0-test")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	return untar(t, mustRead(t, filepath.Join(root, "dist", "emqx-webhook-image.tar")), false)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func untar(t *testing.T, data []byte, gz bool) map[string][]byte {
	t.Helper()
	var r io.Reader = bytes.NewReader(data)
	if gz {
		z, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		r = z
	}
	out := map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[h.Name] = b
	}
}

// make image gives what the Deployment expects (non-root 65532, the binary as entrypoint), one
// layer holding only the static binary and the user's entries (no shell), and the same image
// twice from the same source.
func TestImageIsStaticNonRootAndReproducible(t *testing.T) {
	files := image(t)
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("manifest.json: %v %s", err, files["manifest.json"])
	}
	m := manifest[0]
	if !slices.Equal(m.RepoTags, []string{"ghcr.io/kubectl-emqx/emqx-webhook:v0.0.0-test"}) || len(m.Layers) != 1 {
		t.Fatalf("image %+v", m)
	}
	var cfg struct {
		Architecture, OS string
		Config           struct {
			User       string
			Entrypoint []string
		}
	}
	if err := json.Unmarshal(files[m.Config], &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" || cfg.Config.User != "65532:65532" ||
		!slices.Equal(cfg.Config.Entrypoint, []string{"/emqx-webhook"}) {
		t.Fatalf("config %+v", cfg)
	}
	layer := untar(t, files[m.Layers[0]], true)
	var names []string
	for n := range layer {
		names = append(names, n)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"emqx-webhook", "etc/", "etc/group", "etc/passwd"}) {
		t.Fatalf("layer holds %v", names)
	}
	bin, err := elf.NewFile(bytes.NewReader(layer["emqx-webhook"]))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range bin.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the binary needs a dynamic loader the image does not have")
		}
	}
	first := fmt.Sprintf("%x", sha256.Sum256(files[m.Config]))
	if again := image(t); fmt.Sprintf("%x", sha256.Sum256(again[m.Config])) != first {
		t.Fatal("two builds of the same source gave two images")
	}
}
