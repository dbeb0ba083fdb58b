package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// daemon is a file system server the bench started: corralfs, LXCFS or
// trivialfs, each on its own mount point below the work directory.
type daemon struct {
	name    string
	mount   string // mount point; its files are mount/proc/meminfo, ...
	cmd     *exec.Cmd
	pid     int
	exited  chan struct{}
	pidfile string
}

// startDaemon runs argv in the foreground with its output in the work
// directory's logs, and waits until mount/proc/meminfo answers from a
// mount of fstype.
func startDaemon(e *env, name, mount, fstype string, argv ...string) (*daemon, error) {
	if err := os.MkdirAll(mount, 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(e.work, "logs", name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	d := &daemon{name: name, mount: mount, cmd: cmd, pid: cmd.Process.Pid, exited: make(chan struct{})}
	// For run.sh's sweep, should the driver itself die.
	_ = os.MkdirAll(filepath.Join(e.work, "pids"), 0o755)
	d.pidfile = filepath.Join(e.work, "pids", name)
	_ = os.WriteFile(d.pidfile, []byte(strconv.Itoa(d.pid)), 0o644)
	go func() { _ = cmd.Wait(); close(d.exited) }()
	undo.add(d.stop)
	err = waitFor(20*time.Second, name+" mount", func() error {
		select {
		case <-d.exited:
			return errors.New("daemon exited: " + tail(logPath))
		default:
		}
		if !mountedAs(mount, fstype) {
			return errors.New("not mounted yet")
		}
		var st unix.Stat_t
		return unix.Stat(filepath.Join(mount, "proc", "meminfo"), &st)
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// stop asks the daemon to unmount and exit, kills it if it does not, and
// detaches a mount it left behind.
func (d *daemon) stop() {
	defer os.Remove(d.pidfile)
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(5 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
	for mountedAs(d.mount, "") {
		if err := unix.Unmount(d.mount, unix.MNT_DETACH); err != nil {
			fmt.Fprintf(os.Stderr, "bench: unmount %s: %v\n", d.mount, err)
			break
		}
	}
}

// mountedAs reports whether something (of fstype, when not "") is mounted
// at exactly dir.
func mountedAs(dir, fstype string) bool {
	ms, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return m.Mountpoint != dir || (fstype != "" && m.FSType != fstype), false
	})
	return err == nil && len(ms) > 0
}

// procUsage is a process's CPU time (all threads) and resident memory.
// Summed over a tree, RSS counts the pages of a binary the processes share
// once per process; PSS splits each shared page among its mappers (so a
// tree of one binary counts it about once); Anon is memory of the
// processes' own (heaps, stacks), which no other process shares.
type procUsage struct {
	CPU  time.Duration
	RSS  uint64 // bytes
	PSS  uint64 // bytes
	Anon uint64 // bytes
}

// clockTicks is USER_HZ, the unit of utime/stime in /proc/PID/stat; 100 on
// every Linux architecture the bench runs on.
const clockTicks = 100

// usageOf is the CPU time and RSS of pid and every process below it:
// corralfs serves from a worker child of the supervisor whose pid the
// pidfile holds (and starts its sysinfo keeper below it), so the
// supervisor alone would show almost none of the daemon's cost.
func usageOf(pid int) (procUsage, error) {
	u, err := usageOfProcess(pid)
	if err != nil {
		return u, err
	}
	for _, child := range childrenOf(pid) {
		cu, err := usageOf(child)
		if err != nil {
			continue // it exited meanwhile
		}
		u.CPU += cu.CPU
		u.RSS += cu.RSS
		u.PSS += cu.PSS
		u.Anon += cu.Anon
	}
	return u, nil
}

// childrenOf lists pid's child processes (/proc/PID/task/*/children).
func childrenOf(pid int) []int {
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var kids []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, w := range strings.Fields(string(b)) {
			if k, err := strconv.Atoi(w); err == nil {
				kids = append(kids, k)
			}
		}
	}
	return kids
}

func usageOfProcess(pid int) (procUsage, error) {
	var u procUsage
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// Fields after the command name, which may hold spaces and ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return u, fmt.Errorf("/proc/%d/stat: no command", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): utime is field 14, stime 15.
	if len(f) < 13 {
		return u, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	u.CPU = time.Duration(ut+st) * time.Second / clockTicks
	st2, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for _, line := range strings.Split(string(st2), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			u.RSS = kbField(rest)
		}
		if rest, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			u.Anon = kbField(rest)
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "Pss:"); ok {
				u.PSS = kbField(rest)
			}
		}
	}
	return u, nil
}

// corralfsCounters asks corralfs's control socket for its request counters.
func corralfsCounters(sock string) (opens, reads uint64, err error) {
	c, err := net.DialTimeout("unix", sock, 2*time.Second)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var st struct {
		FS struct {
			Opens uint64 `json:"opens"`
			Reads uint64 `json:"reads"`
		} `json:"fs"`
	}
	if err := json.NewDecoder(c).Decode(&st); err != nil {
		return 0, 0, err
	}
	return st.FS.Opens, st.FS.Reads, nil
}

// trivialfsCounters asks trivialfs (SIGUSR1) to write its request counts.
func trivialfsCounters(d *daemon, path string) (map[string]uint64, error) {
	_ = os.Remove(path)
	if err := d.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return nil, err
	}
	var m map[string]uint64
	err := waitFor(3*time.Second, "trivialfs counts", func() error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &m)
	})
	return m, err
}

// tail returns the last lines of a log file, for error messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	s := strings.TrimSpace(string(b))
	if len(s) > 600 {
		s = "..." + s[len(s)-600:]
	}
	return s
}

// kbField is the byte count of a "   1234 kB" field of /proc/PID/status.
func kbField(s string) uint64 {
	var kb uint64
	fmt.Sscan(s, &kb)
	return kb * 1024
}
