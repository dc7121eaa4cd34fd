package pipeline

import "time"

// SetIdentityRecheck sets how long a lane trusts its last look at the
// cache's nix-cache-info, for the test's duration.
func SetIdentityRecheck(t interface{ Cleanup(func()) }, d time.Duration) {
	old := identityRecheck
	identityRecheck = d
	t.Cleanup(func() { identityRecheck = old })
}
