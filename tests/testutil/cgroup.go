package testutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// TestCgroupParent is the one parent every test cgroup lives under, at the
// ROOT of each hierarchy. Tests never create cgroups relative to their own
// cgroup: on the dev host the shell sits in a cgroup owned by the machine's
// agent, and a relative path would land inside it.
const TestCgroupParent = "/corral-test"

// cgroupMountRoot is where the hierarchies are mounted on every host we run on.
const cgroupMountRoot = "/sys/fs/cgroup"

// v1Controllers are the hierarchies a v1/hybrid test cgroup is created in.
var v1Controllers = []string{"memory", "cpu", "cpuacct", "cpuset", "pids", "blkio"}

// v2Controllers are enabled in cgroup.subtree_control of the root and of
// /corral-test (those the kernel offers; "io" needs CONFIG_BLK_CGROUP).
var v2Controllers = []string{"cpu", "cpuset", "memory", "pids", "io"}

// CgroupMode is the cgroup layout of the machine the test runs on. String()
// gives the same names as cgroupreader.Mode ("v1", "hybrid", "v2") so a test
// can compare the two without testutil importing cgroupreader (which would
// be an import cycle for cgroupreader's own tests).
type CgroupMode int

const (
	CgroupModeUnknown CgroupMode = iota
	CgroupModeV1
	CgroupModeHybrid
	CgroupModeV2
)

func (m CgroupMode) String() string {
	switch m {
	case CgroupModeV1:
		return "v1"
	case CgroupModeHybrid:
		return "hybrid"
	case CgroupModeV2:
		return "v2"
	}
	return "unknown"
}

// DetectCgroupMode looks at the filesystem magic of /sys/fs/cgroup: cgroup2
// there means unified (v2); otherwise a cgroup2 at /sys/fs/cgroup/unified
// means hybrid, and its absence plain v1.
func DetectCgroupMode() CgroupMode {
	var st unix.Statfs_t
	if err := unix.Statfs(cgroupMountRoot, &st); err != nil {
		return CgroupModeUnknown
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return CgroupModeV2
	}
	if err := unix.Statfs(filepath.Join(cgroupMountRoot, "unified"), &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return CgroupModeHybrid
	}
	return CgroupModeV1
}

// Swap settings for CgroupLimits.SwapBytes besides a positive byte count.
const (
	SwapUnset     int64 = 0  // leave the kernel default (unlimited)
	SwapUnlimited int64 = -1 // write "max" (v2) / -1 (v1) explicitly
	SwapNone      int64 = -2 // no swap at all: memory.swap.max=0, v1 memsw = memory
)

// CgroupLimits are the limits NewCgroup writes. A zero field leaves the
// kernel default (no limit / inherit from the parent).
type CgroupLimits struct {
	MemoryBytes int64
	// SwapBytes is swap on top of memory (v2 memory.swap.max semantics; on
	// v1 memsw.limit_in_bytes = MemoryBytes + SwapBytes, so it needs
	// MemoryBytes). See SwapUnset, SwapUnlimited, SwapNone.
	SwapBytes   int64
	CPUQuotaUs  int64 // with CPUPeriodUs (default 100000)
	CPUPeriodUs int64
	Cpus        string // cpuset, e.g. "0" or "0-1"; "" = the parent's
	PidsMax     int64
}

// Paths locates a test cgroup the way /proc/PID/cgroup does: each path
// relative to its hierarchy's mount point. It has the same fields as
// cgroupreader.Paths, so `cgroupreader.Paths(cg.Paths())` converts it.
type Paths struct {
	Unified string            // v2 path; "" on v1/hybrid (we create no v2 cgroup there)
	V1      map[string]string // controller -> path, v1/hybrid only
}

// Cgroup is a real cgroup at /corral-test/<name> created for one test and
// removed (with any process left in it killed) when the test ends.
type Cgroup struct {
	Name string
	Path string // "/corral-test/<name>", relative to every hierarchy root
	Mode CgroupMode
	// dirs maps controller -> absolute directory (v1), or "" -> the one v2 directory.
	dirs map[string]string
}

// NewCgroup creates /corral-test/<name> in every hierarchy (v1/hybrid: the
// memory, cpu, cpuacct, cpuset, pids and blkio hierarchies; v2: the unified
// one), writes lim, and registers its removal in t.Cleanup. name must be
// unique across the repository's tests (test binaries of different packages
// run in parallel): prefix it with the package name. A leftover cgroup of
// the same name (from a crashed run) is emptied and replaced.
func NewCgroup(t testing.TB, name string, lim CgroupLimits) *Cgroup {
	t.Helper()
	RequireRoot(t)
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		t.Fatalf("NewCgroup: bad name %q", name)
	}
	cg := &Cgroup{Name: name, Path: TestCgroupParent + "/" + name, Mode: DetectCgroupMode(), dirs: map[string]string{}}
	var err error
	// Test binaries of different packages run in parallel: another one's
	// cleanup may remove an empty /corral-test between our mkdir of it and
	// of our cgroup (ENOENT, or ENODEV from a file of the removed
	// directory). Starting over is enough.
	for attempt := 0; attempt < 20; attempt++ {
		switch cg.Mode {
		case CgroupModeV2:
			err = cg.createV2()
		case CgroupModeV1, CgroupModeHybrid:
			err = cg.createV1()
		default:
			err = errors.New("cannot detect the cgroup mode of " + cgroupMountRoot)
		}
		if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ENODEV) {
			break
		}
	}
	// Register cleanup before writing limits so a failure below still removes it.
	t.Cleanup(func() {
		if err := cg.remove(); err != nil {
			t.Errorf("removing test cgroup %s: %v", cg.Path, err)
		}
	})
	if err != nil {
		t.Fatalf("NewCgroup(%s): %v", name, err)
	}
	if err := cg.setLimits(lim); err != nil {
		t.Fatalf("NewCgroup(%s): limits: %v", name, err)
	}
	return cg
}

// Dir is the absolute directory of the cgroup in controller's hierarchy
// (v1/hybrid), or the unified directory whatever the controller (v2).
// "" if the controller has no hierarchy here.
func (c *Cgroup) Dir(controller string) string {
	if c.Mode == CgroupModeV2 {
		return c.dirs[""]
	}
	return c.dirs[controller]
}

// Paths gives the cgroup paths a process in this cgroup shows in /proc/PID/cgroup.
func (c *Cgroup) Paths() Paths {
	if c.Mode == CgroupModeV2 {
		return Paths{Unified: c.Path}
	}
	p := Paths{V1: map[string]string{}}
	for ctrl := range c.dirs {
		p.V1[ctrl] = c.Path
	}
	return p
}

// AddProc moves pid (a whole process) into the cgroup, in every hierarchy.
func (c *Cgroup) AddProc(pid int) error {
	for _, d := range c.uniqueDirs() {
		if err := writeFile(filepath.Join(d, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

// Procs lists the pids in the cgroup (v2: the one directory; v1: the union
// over the hierarchies), sorted.
func (c *Cgroup) Procs() ([]int, error) {
	seen := map[int]bool{}
	for _, d := range c.uniqueDirs() {
		pids, err := readProcs(d)
		if err != nil {
			return nil, err
		}
		for _, p := range pids {
			seen[p] = true
		}
	}
	out := make([]int, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Ints(out)
	return out, nil
}

func (c *Cgroup) createV2() error {
	root := cgroupMountRoot
	parent := filepath.Join(root, TestCgroupParent)
	if err := enableV2Controllers(root); err != nil {
		return err
	}
	if err := mkdirCgroup(parent); err != nil {
		return err
	}
	dir := filepath.Join(parent, c.Name)
	if err := removeCgroupTree(dir); err != nil {
		return fmt.Errorf("removing leftover %s: %w", dir, err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	// /corral-test holds no processes ("no internal processes" rule), so it
	// may distribute controllers to its children. Done after our mkdir: from
	// then on a parallel test's cleanup cannot replace /corral-test with a
	// fresh one without controllers.
	if err := enableV2Controllers(parent); err != nil {
		return err
	}
	c.dirs[""] = dir
	return nil
}

// enableV2Controllers writes "+ctrl" into dir/cgroup.subtree_control for
// each wanted controller the kernel offers there and that is not on yet.
func enableV2Controllers(dir string) error {
	avail, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return err
	}
	on, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return err
	}
	have := strings.Fields(string(on))
	for _, ctrl := range v2Controllers {
		if !containsWord(string(avail), ctrl) || contains(have, ctrl) {
			continue
		}
		if err := writeFile(filepath.Join(dir, "cgroup.subtree_control"), "+"+ctrl); err != nil {
			return fmt.Errorf("enabling %s in %s: %w", ctrl, dir, err)
		}
	}
	return nil
}

// v1Mounts maps each v1 controller to its hierarchy's mount point, from
// /proc/self/mountinfo (so co-mounted "cpu,cpuacct" works as well as the
// separate hierarchies of this host).
func v1Mounts() (map[string]string, error) {
	mounts, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup"))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, m := range mounts {
		for _, opt := range strings.Split(m.VFSOptions, ",") {
			if contains(v1Controllers, opt) {
				if _, dup := out[opt]; !dup {
					out[opt] = m.Mountpoint
				}
			}
		}
	}
	return out, nil
}

func (c *Cgroup) createV1() error {
	mounts, err := v1Mounts()
	if err != nil {
		return err
	}
	if len(mounts) == 0 {
		return errors.New("no cgroup v1 hierarchies mounted")
	}
	for _, ctrl := range v1Controllers {
		mp, ok := mounts[ctrl]
		if !ok {
			continue
		}
		c.dirs[ctrl] = filepath.Join(mp, TestCgroupParent, c.Name)
	}
	done := map[string]bool{} // co-mounted controllers share a directory
	for _, ctrl := range sortedKeys(c.dirs) {
		dir := c.dirs[ctrl]
		if done[dir] {
			continue
		}
		done[dir] = true
		parent := filepath.Dir(dir)
		if err := mkdirCgroup(parent); err != nil {
			return err
		}
		if err := removeCgroupTree(dir); err != nil {
			return fmt.Errorf("removing leftover %s: %w", dir, err)
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		if hasCpuset(mounts, dir) {
			// A v1 cpuset cgroup starts with empty cpus/mems and refuses
			// tasks until both are written: copy them down from the root.
			// Only now, with our directory in it, can /corral-test no longer
			// be removed and recreated (empty) by a parallel test's cleanup.
			if err := copyCpuset(filepath.Dir(parent), parent); err != nil {
				return err
			}
			if err := copyCpuset(parent, dir); err != nil {
				return err
			}
		}
	}
	return nil
}

// hasCpuset reports whether dir lies in the hierarchy the cpuset controller is mounted on.
func hasCpuset(mounts map[string]string, dir string) bool {
	mp, ok := mounts["cpuset"]
	return ok && strings.HasPrefix(dir, mp+"/")
}

func copyCpuset(from, to string) error {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		cur, err := os.ReadFile(filepath.Join(to, f))
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(cur)) != "" {
			continue
		}
		val, err := os.ReadFile(filepath.Join(from, f))
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(to, f), strings.TrimSpace(string(val))); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cgroup) setLimits(lim CgroupLimits) error {
	if c.Mode == CgroupModeV2 {
		return c.setLimitsV2(lim)
	}
	return c.setLimitsV1(lim)
}

func (c *Cgroup) setLimitsV2(lim CgroupLimits) error {
	d := c.dirs[""]
	var w []struct{ file, val string }
	add := func(file, val string) { w = append(w, struct{ file, val string }{file, val}) }
	if lim.MemoryBytes > 0 {
		add("memory.max", strconv.FormatInt(lim.MemoryBytes, 10))
	}
	switch {
	case lim.SwapBytes > 0:
		add("memory.swap.max", strconv.FormatInt(lim.SwapBytes, 10))
	case lim.SwapBytes == SwapUnlimited:
		add("memory.swap.max", "max")
	case lim.SwapBytes == SwapNone:
		add("memory.swap.max", "0")
	}
	if lim.CPUQuotaUs > 0 {
		add("cpu.max", fmt.Sprintf("%d %d", lim.CPUQuotaUs, period(lim)))
	}
	if lim.Cpus != "" {
		add("cpuset.cpus", lim.Cpus)
	}
	if lim.PidsMax > 0 {
		add("pids.max", strconv.FormatInt(lim.PidsMax, 10))
	}
	for _, x := range w {
		if err := writeFile(filepath.Join(d, x.file), x.val); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cgroup) setLimitsV1(lim CgroupLimits) error {
	need := func(ctrl string) (string, error) {
		if d := c.dirs[ctrl]; d != "" {
			return d, nil
		}
		return "", fmt.Errorf("no %s hierarchy mounted", ctrl)
	}
	if lim.MemoryBytes > 0 || lim.SwapBytes != SwapUnset {
		d, err := need("memory")
		if err != nil {
			return err
		}
		if lim.MemoryBytes > 0 {
			if err := writeFile(filepath.Join(d, "memory.limit_in_bytes"), strconv.FormatInt(lim.MemoryBytes, 10)); err != nil {
				return err
			}
		}
		// memsw is memory+swap and must be written after the memory limit
		// (the kernel refuses memsw < memory).
		var memsw string
		switch {
		case lim.SwapBytes == SwapUnlimited:
			memsw = "-1"
		case lim.SwapBytes == SwapNone || lim.SwapBytes > 0:
			if lim.MemoryBytes <= 0 {
				return errors.New("cgroup v1 needs MemoryBytes to limit swap (memsw = memory + swap)")
			}
			memsw = strconv.FormatInt(lim.MemoryBytes+max(lim.SwapBytes, 0), 10)
		}
		if memsw != "" {
			if err := writeFile(filepath.Join(d, "memory.memsw.limit_in_bytes"), memsw); err != nil {
				return fmt.Errorf("%w (swap accounting off? boot with swapaccount=1)", err)
			}
		}
	}
	if lim.CPUQuotaUs > 0 {
		d, err := need("cpu")
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(d, "cpu.cfs_period_us"), strconv.FormatInt(period(lim), 10)); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(d, "cpu.cfs_quota_us"), strconv.FormatInt(lim.CPUQuotaUs, 10)); err != nil {
			return err
		}
	}
	if lim.Cpus != "" {
		d, err := need("cpuset")
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(d, "cpuset.cpus"), lim.Cpus); err != nil {
			return err
		}
	}
	if lim.PidsMax > 0 {
		d, err := need("pids")
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(d, "pids.max"), strconv.FormatInt(lim.PidsMax, 10)); err != nil {
			return err
		}
	}
	return nil
}

func period(lim CgroupLimits) int64 {
	if lim.CPUPeriodUs > 0 {
		return lim.CPUPeriodUs
	}
	return 100000
}

// remove kills what is left in the cgroup (and in any child cgroup a test
// created below it), removes the directories bottom-up, and removes
// /corral-test when nothing else is left in it.
func (c *Cgroup) remove() error {
	var errs []error
	for _, d := range c.uniqueDirs() {
		if err := removeCgroupTree(d); err != nil {
			errs = append(errs, err)
		}
	}
	// A runtime given this cgroup as a parent (runc under containerd: a
	// pod's CgroupParent) makes it in every hierarchy, also those we did
	// not (freezer, devices, name=systemd, the hybrid's unified one):
	// the same path there is this test's too.
	others, _ := filepath.Glob("/sys/fs/cgroup/*" + c.Path)
	for _, d := range others {
		if err := removeCgroupTree(d); err != nil {
			errs = append(errs, err)
		}
	}
	// Another package's test may still use /corral-test: then it stays.
	RemoveEmptyTestParents()
	return errors.Join(errs...)
}

// uniqueDirs lists each distinct directory once (co-mounted v1 controllers
// share one), in a fixed order.
func (c *Cgroup) uniqueDirs() []string {
	seen := map[string]bool{}
	var out []string
	for _, k := range sortedKeys(c.dirs) {
		if d := c.dirs[k]; !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// removeCgroupTree kills every process in dir and its descendants and
// removes them bottom-up. It is only ever called on directories below
// /corral-test, i.e. cgroups the tests created. A missing dir is fine.
func removeCgroupTree(dir string) error {
	if !strings.Contains(dir, TestCgroupParent+"/") {
		return fmt.Errorf("refusing to remove %s: not below %s", dir, TestCgroupParent)
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroupTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		killProcs(dir)
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			pids, _ := readProcs(dir)
			return fmt.Errorf("rmdir %s: %w (pids left: %v)", dir, err, pids)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killProcs SIGKILLs the processes in the cgroup dir itself. v2 kernels
// with cgroup.kill do it atomically (no fork race); otherwise kill each pid
// listed in cgroup.procs.
func killProcs(dir string) {
	if _, err := os.Stat(filepath.Join(dir, "cgroup.kill")); err == nil {
		_ = writeFile(filepath.Join(dir, "cgroup.kill"), "1")
		return
	}
	pids, _ := readProcs(dir)
	for _, p := range pids {
		if p > 0 {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}
}

func readProcs(dir string) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		p, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("%s/cgroup.procs: %q: %w", dir, f, err)
		}
		pids = append(pids, p)
	}
	return pids, nil
}

func mkdirCgroup(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return nil
}

// writeFile writes a cgroup control file. cgroupfs wants a single write
// without O_CREATE/O_TRUNC, and its error (EINVAL, EBUSY, ...) matters.
func writeFile(path, val string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(val)
	cerr := f.Close()
	if werr != nil {
		return fmt.Errorf("write %q to %s: %w", val, path, werr)
	}
	return cerr
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func containsWord(text, word string) bool { return contains(strings.Fields(text), word) }

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
