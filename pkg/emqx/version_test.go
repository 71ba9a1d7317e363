package emqx_test

import (
	"testing"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// Each release question at its boundary; a version that does not parse may have anything.
func TestReleaseQuestions(t *testing.T) {
	for _, c := range []struct {
		question   func(emqx.Version) bool
		before, at string
	}{
		{emqx.Version.AcceptsDuringHealthCheck, "5.3.2", "5.4.0"},
		{emqx.Version.HasDurableSessions, "5.7.9", "e5.8.0"},
		{emqx.Version.DiscardsLostSessions, "5.8.3", "5.8.4"},
		{emqx.Version.LocksLogins, "5.8.9", "5.9.0"},
		{emqx.Version.HasDurableStorage, "5.8.9", "5.9.0-rc.1"},
		{emqx.Version.ForgetsSites, "5.10.4", "6.0.0"},
		{emqx.Version.HasHardenedProfile, "6.2.0", "6.2.1"},
	} {
		before, err1 := emqx.ParseVersion(c.before)
		at, err2 := emqx.ParseVersion(c.at)
		if err1 != nil || err2 != nil || c.question(before) || !c.question(at) {
			t.Errorf("%s → %s: %v %v (%v %v)", c.before, c.at, c.question(before), c.question(at), err1, err2)
		}
		if !emqx.MayHave("latest", c.question) || emqx.MayHave(c.before, c.question) {
			t.Errorf("MayHave around %s", c.before)
		}
	}
}
