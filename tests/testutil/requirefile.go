package testutil

import (
	"os"
	"testing"
)

// RequireFile needs path to exist (e.g. a data file a Debian package
// installs); hint says how to get it. Skips outside CI, fails in CI.
func RequireFile(t testing.TB, path, hint string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		skipOrFail(t, "needs %s (%s): %v", path, hint, err)
	}
}
