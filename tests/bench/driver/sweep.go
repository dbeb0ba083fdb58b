package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/corral-dev/corral/tests/testutil"
)

// removeBenchCgroups removes the cgroups /corral-test/PREFIX* in every
// hierarchy, killing what is left in them: the runtimes of section 3
// create theirs in hierarchies (devices, freezer, ...) that
// testutil.NewCgroup does not know, and may leave them behind.
func removeBenchCgroups(prefix string) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*" + testutil.TestCgroupParent)
	roots = append(roots, "/sys/fs/cgroup"+testutil.TestCgroupParent)
	for _, root := range roots {
		dirs, _ := filepath.Glob(filepath.Join(root, prefix+"*"))
		for _, d := range dirs {
			removeTree(d)
		}
		_ = syscall.Rmdir(root) // only succeeds when no one else uses it
	}
}

func removeTree(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			removeTree(filepath.Join(dir, e.Name()))
		}
	}
	for range 50 {
		if b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if err := syscall.Rmdir(dir); err == nil || err == syscall.ENOENT {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killByCmdline kills the processes whose command line holds every one of
// words; callers pass a path unique to this run, so only processes the
// bench caused to start match.
func killByCmdline(words ...string) {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		all := true
		for _, w := range words {
			found := false
			for _, a := range args {
				if a == w {
					found = true
					break
				}
			}
			all = all && found
		}
		if pid, err := strconv.Atoi(filepath.Base(d)); all && err == nil && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGTERM)
			for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
				time.Sleep(20 * time.Millisecond)
			}
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
