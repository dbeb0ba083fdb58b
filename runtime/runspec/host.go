package runspec

import (
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/corral-dev/corral/runtime"
	"github.com/corral-dev/corral/runtime/defaultroot"
	"github.com/corral-dev/corral/runtime/views"
)

// ProbeHost reads the real machine into a Host: swap accounting, online
// CPUs, PSI, the runtime's seccomp support, whether corralfs's sysinfo agent
// listens at sysinfoSocket. The default root and the views are probed only
// when Build asks (a --bundle run needs neither). rootInUse tells the
// default-root builder whether a container still uses an old generation.
func ProbeHost(sysinfoSocket string, rootInUse func(string) bool) Host {
	h := Host{
		DefaultRoot: func() (*defaultroot.Root, error) {
			return defaultroot.Ensure(defaultroot.Config{Dir: defaultRootDir(), InUse: rootInUse})
		},
		SwapAccounting: swapAccounting(),
		ProbeViews:     probeViews,
		PSI:            views.HostPSI(),
		LookupEnv:      os.LookupEnv,
	}
	h.OnlineCPUs, _ = onlineCPUs()
	if fi, err := os.Stat(sysinfoSocket); err == nil && fi.Mode()&os.ModeSocket != 0 {
		h.SysinfoSocket = sysinfoSocket
	}
	sc := runtime.Features().Linux.Seccomp
	h.Seccomp = sc != nil && sc.Enabled != nil && *sc.Enabled
	return h
}

// probeViews: a directory left behind by a stopped daemon, or a dead FUSE
// mount (every access ENOTCONN), must not be bound over the container's
// /proc.
func probeViews(dir string) (bool, error) {
	live, err := views.Live(dir)
	if err != nil || !live {
		return false, nil
	}
	return true, views.Answers(dir, 2*time.Second)
}

// swapAccounting reports whether the kernel limits swap per cgroup: the v1
// memory controller has memsw files, or a v2 cgroup has memory.swap.max.
func swapAccounting() bool {
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"); err == nil {
		return true
	}
	if m, _ := filepath.Glob("/sys/fs/cgroup/*/memory.swap.max"); len(m) > 0 {
		return true
	}
	return false
}

// defaultRootDir caches the default root in root's /var/lib/corral, or,
// rootless, in the user's cache directory ($XDG_CACHE_HOME or ~/.cache),
// else in /tmp/corral-defaultroot-UID (not in the state root, where every
// directory is a container).
func defaultRootDir() string {
	if !runtime.Rootless() {
		return defaultroot.DefaultDir
	}
	if dir, err := os.UserCacheDir(); err == nil {
		if err := os.MkdirAll(dir, 0o700); err == nil {
			return filepath.Join(dir, "corral", "defaultroot")
		}
	}
	return filepath.Join(os.TempDir(), "corral-defaultroot-"+strconv.Itoa(os.Geteuid()))
}
