package emqx

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Version is an EMQX release: 5.3.2, 5.8.4, 6.2.2. What a number means changed between releases
// (API.md "Versions"), so the plugin, the webhook and the simulator all ask this one type.
type Version struct{ Major, Minor, Patch int }

// ParseVersion reads "5.10.4", "e5.8.4", "v6.2.2" or "6.2.2-rc.1" (a pre-release counts as its
// release). It fails on anything else, such as "latest".
func ParseVersion(s string) (Version, error) {
	t := strings.TrimLeft(strings.TrimSpace(s), "ev")
	if i := strings.IndexAny(t, "-+"); i >= 0 {
		t = t[:i]
	}
	parts := strings.Split(t, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return Version{}, fmt.Errorf("EMQX version %q: want major.minor[.patch], such as 5.8.4", Printable(s, 64))
	}
	var nums [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return Version{}, fmt.Errorf("EMQX version %q: %q is not a number", Printable(s, 64), Printable(p, 16))
		}
		nums[i] = n
	}
	return Version{nums[0], nums[1], nums[2]}, nil
}

// AtLeast reports whether v is major.minor.patch or later.
func (v Version) AtLeast(major, minor, patch int) bool {
	switch {
	case v.Major != major:
		return v.Major > major
	case v.Minor != minor:
		return v.Minor > minor
	}
	return v.Patch >= patch
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// What changed when, from EMQX's source (API.md "Versions"). Each is a question about one release.

// HasDurableSessions: durable_sessions.enable exists (5.8.0), and the evacuation's session count
// adds the cluster-wide count of disconnected durable sessions.
func (v Version) HasDurableSessions() bool { return v.AtLeast(5, 8, 0) }

// LocksLogins: the dashboard locks a user for 10 minutes after 5 failed logins in 5 (e5.9.0).
func (v Version) LocksLogins() bool { return v.AtLeast(5, 9, 0) }

// HasAPIKeyScopes: an API key needs scope cluster_operations for /nodes and /load_rebalance
// (5.10.4 and later 5.10 releases, 6.1.2 and later 6.1 releases, 6.2.1 and later).
func (v Version) HasAPIKeyScopes() bool {
	switch {
	case v.Major == 5:
		return v.AtLeast(5, 10, 4)
	case v.Major == 6 && v.Minor == 0:
		return false
	case v.Major == 6 && v.Minor == 1:
		return v.AtLeast(6, 1, 2)
	case v.Major == 6 && v.Minor == 2:
		return v.AtLeast(6, 2, 1)
	}
	return v.Major > 6 || v.Major == 6 && v.Minor > 2
}

// AcceptsDuringHealthCheck: during waiting_health_check the node still accepts new connections
// (e5.4.0).
func (v Version) AcceptsDuringHealthCheck() bool { return v.AtLeast(5, 4, 0) }

// DiscardsLostSessions: session eviction drops a session whose process died instead of trying it
// again for ever (#14353, #14907: 5.8.4 and 5.9.0).
func (v Version) DiscardsLostSessions() bool { return v.AtLeast(5, 8, 4) }

// HasDurableStorage: durable storage's replicated backend, with cores as sites and the /ds API
// (5.9.0).
func (v Version) HasDurableStorage() bool { return v.AtLeast(5, 9, 0) }

// ForgetsSites: PUT /ds/sites/{site}/forget (6.0.0).
func (v Version) ForgetsSites() bool { return v.AtLeast(6, 0, 0) }

// HasHardenedProfile: EMQX_SECURITY_PROFILE=hardened (6.2.1).
func (v Version) HasHardenedProfile() bool { return v.AtLeast(6, 2, 1) }

// MayHave answers a release question for a version as /nodes reports it: one that does not parse
// (an unknown build) may have it, so callers ask EMQX rather than assume it has not.
func MayHave(version string, question func(Version) bool) bool {
	v, err := ParseVersion(version)
	return err != nil || question(v)
}

// LoginLockDuration is dashboard.unsuccessful_login_lock_duration's default (600 s, 5.9+).
const LoginLockDuration = 10 * time.Minute
