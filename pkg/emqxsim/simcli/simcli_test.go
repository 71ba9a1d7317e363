package simcli

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseRejectsBadFlags(t *testing.T) {
	for args, want := range map[string]string{
		"--nodes 0":                                  "--nodes must be at least 1",
		"--nodes 2 --connections 1,2,3":              "--connections has 3 values for 2 nodes",
		"--nodes 2 --connections 1,x":                `"x" is not a count`,
		"--nodes 2 --connections 1,1 --sessions 2,0": "more sessions than connections",
		"--time-scale 0":                             "--time-scale must be positive",
		"--listen nowhere":                           "want HOST:PORT",
		"--api-key justakey":                         "want KEY:SECRET",
		"--nodes 2 --name-template emqx@same":        "has no {i}",
		"--reconnect-share 2":                        "between 0 and 1",
		"extra":                                      "unexpected argument",
	} {
		_, err := Parse(strings.Fields(args), io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", args, err, want)
		}
	}
}

// The CLI contract: one "NAME URL" line per node, node i on PORT+i, each answering /api/v5/nodes.
func TestRunServesEachNodeOnItsOwnPort(t *testing.T) {
	o, err := Parse(
		strings.Fields("--nodes 2 --listen 127.0.0.1:0 --connections 7,3 --api-key k:s --time-scale 100"),
		io.Discard,
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, o, pw, io.Discard); pw.Close() }()
	sc := bufio.NewScanner(pr)
	var urls []string
	for len(urls) < 2 && sc.Scan() {
		name, url, ok := strings.Cut(sc.Text(), " ")
		if !ok || !strings.HasPrefix(name, "emqx@emqx-") || !strings.HasPrefix(url, "http://127.0.0.1:") {
			t.Fatalf("line %q", sc.Text())
		}
		urls = append(urls, url)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	req, _ := http.NewRequest(http.MethodGet, urls[1]+"/api/v5/nodes", nil)
	req.SetBasicAuth("k", "s")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var nodes []map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&nodes)
	resp.Body.Close()
	if len(nodes) != 2 || nodes[0]["live_connections"] != 7.0 || nodes[1]["live_connections"] != 3.0 {
		t.Fatalf("nodes %v", nodes)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop when its context ended")
	}
}
