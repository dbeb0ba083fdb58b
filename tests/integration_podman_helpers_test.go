package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/tests/testutil"
)

// podmanEnv is a podman with its own storage, run directory and cgroup
// parent, all removed at the end of the test: nothing of the host's podman
// state is touched, and the containers' cgroups live below /corral-test.
type podmanEnv struct {
	t       *testing.T
	podman  string
	runtime string // --runtime
	globals []string
	cgName  string // /corral-test/<cgName> is the cgroup parent
	image   string
}

// podmanHostQuirks are what this sandbox needs and a normal host does not:
// no CAP_SYS_RESOURCE to raise rlimits past the hard limits podman's
// defaults ask for, and no network to set up.
var podmanHostQuirks = []string{"--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768", "--network", "none"}

// newPodmanEnv sets up podman driving runtime (an absolute path) with a
// busybox image imported from testutil.BusyboxRootfs.
func newPodmanEnv(t *testing.T, runtime string) *podmanEnv {
	t.Helper()
	testutil.RequireRoot(t)
	if testutil.InVM() {
		t.Skip("root podman runs on the host; the VM runs rootless podman (TestPodmanRootless)")
	}
	e := &podmanEnv{t: t, podman: testutil.RequireCommand(t, "podman"), runtime: runtime}
	testutil.RequireCommand(t, "conmon")
	dir := t.TempDir()
	e.cgName = fmt.Sprintf("podman-%d-%s", os.Getpid(), strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())))
	// vfs storage: a plain copy of the image per container, no overlay
	// mounts to leave behind; file events: there is no journald here.
	e.globals = []string{"--root", filepath.Join(dir, "storage"), "--runroot", filepath.Join(dir, "run"),
		"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
		"--tmpdir", filepath.Join(dir, "tmp"), "--runtime", runtime}
	t.Cleanup(func() {
		e.podmanCmd(30*time.Second, nil, "rm", "--all", "--force", "--time", "0")
		e.podmanCmd(30*time.Second, nil, "image", "rm", "--all", "--force")
		removeMountsBelow(t, dir)
		removePodmanCgroups(t, e.cgName)
	})

	tarball := filepath.Join(dir, "rootfs.tar")
	if out, err := exec.Command("tar", "-C", testutil.BusyboxRootfs(t), "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	e.image = "localhost/corral-test-busybox:" + fmt.Sprint(os.Getpid())
	e.must("import", "--change", "ENV PATH=/bin:/sbin", tarball, e.image)
	return e
}

// podmanCmd runs podman with the env's globals; stdin may be nil.
func (e *podmanEnv) podmanCmd(timeout time.Duration, stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.podman, append(append([]string(nil), e.globals...), args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v: %w", timeout, err)
	}
	return out.String(), err
}

// must runs podman and fails the test on an error.
func (e *podmanEnv) must(args ...string) string {
	e.t.Helper()
	out, err := e.podmanCmd(60*time.Second, nil, args...)
	if err != nil {
		e.t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// runArgs are the flags of every `podman run` (cgroup parent and quirks).
func (e *podmanEnv) runArgs(extra ...string) []string {
	args := append([]string{"run", "--cgroup-parent", testutil.TestCgroupParent + "/" + e.cgName}, podmanHostQuirks...)
	return append(args, extra...)
}

// exitCode returns the exit status in err (0 for nil, -1 if not an exit).
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// removeMountsBelow unmounts anything podman left mounted below dir
// (deepest first) so that t.TempDir's removal can succeed.
func removeMountsBelow(t *testing.T, dir string) {
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		t.Errorf("mountinfo: %v", err)
		return
	}
	sort.Slice(ms, func(i, j int) bool { return len(ms[i].Mountpoint) > len(ms[j].Mountpoint) })
	for _, m := range ms {
		if err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			t.Errorf("unmount %s: %v", m.Mountpoint, err)
		}
	}
}

// removePodmanCgroups removes /corral-test/<name> and everything below it
// in every hierarchy (podman's cgroupfs manager creates the container's
// cgroup in every v1 controller, more than testutil.NewCgroup knows). Only
// empty cgroups are removed: the containers are gone by now.
func removePodmanCgroups(t *testing.T, name string) {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + testutil.TestCgroupParent + "/" + name)
	if d := "/sys/fs/cgroup" + testutil.TestCgroupParent + "/" + name; fileExists(d) {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		var all []string
		filepath.WalkDir(d, func(p string, de os.DirEntry, err error) error {
			if err == nil && de.IsDir() {
				all = append(all, p)
			}
			return nil
		})
		for i := len(all) - 1; i >= 0; i-- {
			var err error
			for try := 0; try < 50; try++ {
				if err = unix.Rmdir(all[i]); err == nil || errors.Is(err, unix.ENOENT) {
					err = nil
					break
				}
				time.Sleep(20 * time.Millisecond) // a just-killed task may still be leaving
			}
			if err != nil {
				t.Errorf("removing podman's cgroup %s: %v", all[i], err)
			}
		}
	}
	testutil.RemoveEmptyTestParents()
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
