package follow

import (
	"errors"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// A 404 for kwok's PortForwards means the API is not served (yet); one for the pod's namespace
// means the namespace is gone, which says nothing about the API.
func TestNoAPIIsAbout404sOfThePortForwardAPIOnly(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{apierrors.NewGenericServerResponse(404, "POST", portForwardGVR.GroupResource(), "", "", 0, false), true},
		{apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "gone"), false},
		{apierrors.NewForbidden(portForwardGVR.GroupResource(), "x", errors.New("no")), false},
		{nil, false},
	} {
		if got := noAPI(c.err); got != c.want {
			t.Errorf("noAPI(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
