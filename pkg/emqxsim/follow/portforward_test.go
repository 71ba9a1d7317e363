package follow

import (
	"context"
	"errors"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// discoveryAfter serves kwok's PortForwards from its n-th question on (never when n is 0).
type discoveryAfter struct{ n, asked int }

func (d *discoveryAfter) ServerResourcesForGroupVersion(gv string) (*metav1.APIResourceList, error) {
	d.asked++
	if d.n == 0 || d.asked < d.n || gv != portForwardGVR.GroupVersion().String() {
		return nil, errors.New("the server could not find the requested resource")
	}
	return &metav1.APIResourceList{GroupVersion: gv, APIResources: []metav1.APIResource{
		{Name: "portforwards/status"}, {Name: portForwardGVR.Resource},
	}}, nil
}

// The PortForward API is waited for while it is not served yet (kwok just started), and given
// up on after the tries.
func TestPortForwardServedWaitsForTheAPI(t *testing.T) {
	ctx := context.Background()
	late := &discoveryAfter{n: 3}
	if !portForwardServed(ctx, late, 5, 0) || late.asked != 3 {
		t.Fatalf("an API served from the 3rd question on: asked %d times, want served after 3", late.asked)
	}
	never := &discoveryAfter{}
	if portForwardServed(ctx, never, 5, 0) || never.asked != 5 {
		t.Fatalf("an API never served: asked %d times, want not served after 5", never.asked)
	}
}
