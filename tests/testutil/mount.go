package testutil

import (
	"testing"

	"github.com/moby/sys/mountinfo"

	"github.com/corral-dev/corral/fusefs/facts"
)

// IsCorralfsMount reports whether a corralfs is mounted exactly at mp.
func IsCorralfsMount(t testing.TB, mp string) bool {
	t.Helper()
	ms, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(mp))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.FSType == facts.FSType {
			return true
		}
	}
	return false
}
