// Command imagetar builds an image without Docker: one layer holding a static binary (the
// emqx-webhook; the local node's pause image) and the passwd and group entries of user 65532, no
// shell and nothing else; run as 65532:65532 with the binary as entrypoint. It writes an image
// tarball that `ctr images import` and `docker load` read.
//
//	go run ./imagetar -binary PATH -ref ghcr.io/kubectl-emqx/emqx-webhook:dev -platform linux/amd64 -o OUT.tar
package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// epoch is the files' and the image's time: the same binary gives the same image.
var epoch = time.Unix(0, 0).UTC()

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "imagetar:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("imagetar", flag.ContinueOnError)
	bin := fs.String("binary", "", "static linux binary to run as /emqx-webhook")
	ref := fs.String("ref", "", "image reference the tarball names, e.g. ghcr.io/kubectl-emqx/emqx-webhook:dev")
	platform := fs.String("platform", "linux/amd64", "os/arch of the binary")
	as := fs.String("name", "emqx-webhook", "the binary's name at the image's root")
	out := fs.String("o", "", "output tarball")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bin == "" || *ref == "" || *out == "" || *as == "" || strings.Contains(*as, "/") {
		return errors.New("-binary, -ref and -o are required, and -name is a plain file name")
	}
	osName, arch, ok := strings.Cut(*platform, "/")
	if !ok || osName != "linux" {
		return fmt.Errorf("-platform %q: want linux/ARCH", *platform)
	}
	tag, err := name.NewTag(*ref)
	if err != nil {
		return fmt.Errorf("-ref %q: %w", *ref, err)
	}
	data, err := os.ReadFile(*bin)
	if err != nil {
		return err
	}
	if err := static(*bin); err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(files(*as, data))), nil
	})
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Created = osName, arch, v1.Time{Time: epoch}
	cfg.Config = v1.Config{User: "65532:65532", Entrypoint: []string{"/" + *as}, WorkingDir: "/",
		Env: []string{
			"PATH=/",
		}, Labels: map[string]string{"org.opencontainers.image.source": "https://github.com/kubectl-emqx/kubectl-emqx"}}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return err
	}
	if err := tarball.WriteToFile(*out, tag, img); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	d, _ := img.Digest()
	fmt.Printf("%s %s %s\n", *out, tag, d)
	return nil
}

// static refuses a binary that needs a dynamic loader: the image has none.
func static(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s is not a linux binary: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked; build it with CGO_ENABLED=0", path)
		}
	}
	return nil
}

// files is the layer: the binary and the nonroot user's passwd and group entries.
func files(name string, bin []byte) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, mode int64, body []byte) {
		_ = tw.WriteHeader(
			&tar.Header{
				Name:     name,
				Mode:     mode,
				Size:     int64(len(body)),
				ModTime:  epoch,
				Typeflag: tar.TypeReg,
				Format:   tar.FormatPAX,
			},
		)
		_, _ = tw.Write(body)
	}
	dir := func(name string) {
		_ = tw.WriteHeader(
			&tar.Header{Name: name, Mode: 0o755, ModTime: epoch, Typeflag: tar.TypeDir, Format: tar.FormatPAX},
		)
	}
	dir("etc/")
	add("etc/passwd", 0o644, []byte("nonroot:x:65532:65532:nonroot:/:/sbin/nologin\n"))
	add("etc/group", 0o644, []byte("nonroot:x:65532:\n"))
	add(name, 0o755, bin)
	_ = tw.Close()
	return buf.Bytes()
}
