package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestGetNeverEmpty(t *testing.T) {
	old := version
	defer func() { version = old }()
	version = ""
	i := Get()
	if i.Version == "" || i.Commit == "" || i.GoVersion != runtime.Version() {
		t.Fatalf("Get() = %+v", i)
	}
	version = "1.2.3"
	if got := Get().String(); !strings.HasPrefix(got, "version 1.2.3, commit ") || !strings.HasSuffix(got, runtime.Version()) {
		t.Fatalf("String() = %q", got)
	}
}
