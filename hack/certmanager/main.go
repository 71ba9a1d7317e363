// Command cert-manager-local runs cert-manager's own controllers and its CA injector, from the
// cert-manager v1.21.2 module of the Go module proxy, as one process outside the local cluster: the
// controllers a self-signed or CA Issuer needs (issuers, the certificates-* loops, the
// CertificateRequest approver and signers) and the injector of caBundle into webhook
// configurations and APIServices. Production runs the same code as the cert-manager and
// cert-manager-cainjector Deployments; hack/cert-manager-up.sh builds, caches and starts it for the
// e2e test of manifests/cert-manager. ACME, Vault, Venafi, the ingress and gateway shims and
// cert-manager's own admission webhook are left out: nothing here uses them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/cert-manager/cert-manager/pkg/controller"
	"github.com/cert-manager/cert-manager/pkg/controller/cainjector"
	"github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	crca "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	crselfsigned "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	"github.com/cert-manager/cert-manager/pkg/controller/issuers"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"         // the CA Issuer's setup, for the issuers loop
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned" // the self-signed Issuer's setup
	"github.com/cert-manager/cert-manager/pkg/util"
	corev1 "k8s.io/api/core/v1"
	apiext "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	apireg "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// loops are the cert-manager controllers this process runs, by their registered names.
var loops = []string{
	issuers.ControllerName,
	trigger.ControllerName,
	keymanager.ControllerName,
	requestmanager.ControllerName,
	issuing.ControllerName,
	readiness.ControllerName,
	revisionmanager.ControllerName,
	approver.ControllerName,
	crselfsigned.CRControllerName,
	crca.CRControllerName,
}

func main() {
	// A flag set of its own: controller-runtime registers --kubeconfig on the global one.
	fs := flag.NewFlagSet("cert-manager-local", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster to serve")
	klog.InitFlags(fs)
	_ = fs.Parse(os.Args[1:]) // ExitOnError: a bad flag exits with its usage
	ctrl.SetLogger(klog.NewKlogr())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *kubeconfig); err != nil {
		fmt.Fprintln(os.Stderr, "cert-manager-local:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, kubeconfig string) error {
	if kubeconfig == "" {
		return errors.New("no kubeconfig: pass --kubeconfig or set KUBECONFIG")
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(loops)+1)
	if err := startControllers(ctx, kubeconfig, &wg, errs); err != nil {
		return err
	}
	if err := startInjector(ctx, kubeconfig, &wg, errs); err != nil {
		return err
	}
	klog.InfoS("cert-manager controllers and CA injector running", "controllers", loops)
	select {
	case <-ctx.Done():
	case err := <-errs:
		return err
	}
	wg.Wait()
	return nil
}

// startControllers builds cert-manager's controller context as its controller binary does and runs
// the chosen loops: constructors first (they register their informers), then the informers.
func startControllers(ctx context.Context, kubeconfig string, wg *sync.WaitGroup, errs chan<- error) error {
	factory, err := controller.NewContextFactory(ctx, controller.ContextOptions{
		Kubeconfig:         kubeconfig,
		KubernetesAPIQPS:   50,
		KubernetesAPIBurst: 100,
		IssuerOptions:      controller.IssuerOptions{ClusterResourceNamespace: "cert-manager"},
		CertificateOptions: controller.CertificateOptions{
			CertificateRequestMinimumBackoffDuration: time.Hour,
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour,
		},
	})
	if err != nil {
		return fmt.Errorf("cert-manager controller context: %w", err)
	}
	known := controller.Known()
	var built []controller.Interface
	for _, name := range loops {
		newLoop, ok := known[name]
		if !ok {
			return fmt.Errorf("cert-manager has no controller %q", name)
		}
		c, err := newLoop(factory)
		if err != nil {
			return fmt.Errorf("cert-manager controller %s: %w", name, err)
		}
		built = append(built, c)
	}
	shared, err := factory.Build()
	if err != nil {
		return fmt.Errorf("cert-manager controller context: %w", err)
	}
	shared.KubeSharedInformerFactory.Start(ctx.Done())
	shared.SharedInformerFactory.Start(ctx.Done())
	for i, c := range built {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Run(2, ctx); err != nil {
				errs <- fmt.Errorf("cert-manager controller %s: %w", loops[i], err)
			}
		}()
	}
	return nil
}

// startInjector runs cert-manager's CA injector on a controller-runtime manager, reading Secrets
// directly (its watches cache only their metadata), for webhook configurations and APIServices.
func startInjector(ctx context.Context, kubeconfig string, wg *sync.WaitGroup, errs chan<- error) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	// The injector's field manager (server-side apply of caBundle) comes from the user agent.
	cfg = util.RestConfigWithUserAgent(cfg, "cainjector")
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme,
		apiext.AddToScheme,
		apireg.AddToScheme,
		cmapi.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			return fmt.Errorf("scheme: %w", err)
		}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Client: client.Options{
			Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}},
		},
	})
	if err != nil {
		return fmt.Errorf("CA injector manager: %w", err)
	}
	if err := cainjector.RegisterAllInjectors(ctx, mgr, cainjector.SetupOptions{
		EnableCertificatesDataSource: true,
		EnabledReconcilersFor: map[string]bool{
			cainjector.ValidatingWebhookConfigurationName: true,
			cainjector.MutatingWebhookConfigurationName:   true,
			cainjector.APIServiceName:                     true,
		},
	}); err != nil {
		return fmt.Errorf("CA injector: %w", err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := mgr.Start(ctx); err != nil {
			errs <- fmt.Errorf("CA injector: %w", err)
		}
	}()
	return nil
}
