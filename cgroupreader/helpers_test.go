package cgroupreader_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/cgroupreader/fixtures"
)

func errorsIs(err, target error) bool { return errors.Is(err, target) }

func fmtUint(v uint64) string { return strconv.FormatUint(v, 10) }

// shared holds one materialized tree per layout for the tests that only
// read, or that change a file and put it back (copying a tree costs a few
// hundred file creations).
var shared = map[string]cgroupreader.Config{}

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if os.Getenv(sleeperEnv) != "" {
		sleeper() // the child process of the host integration test
	}
	dir, err := os.MkdirTemp("", "cgroupreader-fixtures")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	for _, layout := range layouts {
		d := filepath.Join(dir, layout)
		if err := fixtures.CopyTo(d, layout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		shared[layout] = cgroupreader.Config{CgroupRoot: filepath.Join(d, "cgroup"), ProcRoot: filepath.Join(d, "proc")}
	}
	return m.Run()
}

// sharedReader reads the shared tree of layout. Tests using it must not
// run in parallel with ones that mutate it (none use t.Parallel).
func sharedReader(t testing.TB, layout string) (cgroupreader.Reader, cgroupreader.Config) {
	t.Helper()
	cfg := shared[layout]
	r, err := cgroupreader.New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", layout, err)
	}
	return r, cfg
}

// mutate replaces a file of a shared tree for the duration of the test.
func mutate(t *testing.T, path, content string) {
	t.Helper()
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(path, old, 0o644); err != nil {
			t.Errorf("restoring %s: %v", path, err)
		}
	})
	writeFile(t, path, content)
}
