package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// serviceAccountToken is where a pod's ServiceAccount token is mounted.
const serviceAccountToken = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// checkMetrics is --check-metrics (the chart's helm test): one GET of the webhook's metrics, as
// Prometheus scrapes them (the pod's ServiceAccount token; the metrics server's certificate is
// its own, so it is not verified, as in the ServiceMonitor). It fails unless the answer is 200 and
// carries the webhook's decisions counter, and says which.
func checkMetrics(ctx context.Context, url, tokenFile string, out io.Writer) error {
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		return fmt.Errorf("--check-metrics: read the ServiceAccount token: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("--check-metrics %s: %w", url, err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}, // see above
	}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("--check-metrics %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("--check-metrics %s: read: %w", url, err)
	}
	switch {
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("--check-metrics %s: %s (is the ServiceAccount bound to emqx-webhook-metrics-reader?)",
			url, resp.Status)
	case !strings.Contains(string(body), "emqx_webhook_decisions_total"):
		return fmt.Errorf("--check-metrics %s: 200, but no emqx_webhook_decisions_total: not the webhook", url)
	}
	_, err = fmt.Fprintf(out, "ok: %s serves the webhook's metrics\n", url)
	return err
}
