package cgroupreader

import (
	"fmt"
	"io/fs"
	"strconv"
	"syscall"

	"github.com/corral-dev/corral/fusefs/facts"
)

// pathsOf parses PROCROOT/PID/cgroup, which has one line per hierarchy:
//
//	v1:     4:memory:/docker/abc      (controllers, comma-separated)
//	        1:cpu,cpuacct:/docker/abc (co-mounted: each name maps to the path)
//	        9:name=systemd:/system.slice/x.service
//	v2:     0::/system.slice/x.service
//
// The path is everything after the second colon (it may contain colons).
func pathsOf(procRoot string, pid int) (Paths, error) {
	if pid <= 0 {
		return Paths{}, fmt.Errorf("cgroupreader: invalid pid %d", pid)
	}
	sc := getScratch()
	defer putScratch(sc)
	p := append(sc.path[:0], procRoot...)
	p = append(p, '/')
	p = strconv.AppendInt(p, int64(pid), 10)
	sc.path = append(p, "/cgroup\x00"...)
	data, err := sc.readPath(false)
	if err != nil {
		if errno, ok := err.(syscall.Errno); ok {
			err = &fs.PathError{Op: "open", Path: sc.pathString(), Err: errno}
		}
		return Paths{}, fmt.Errorf("cgroupreader: %w", err)
	}
	var out Paths
	var last string
	lines := 0
	for rest := data; len(rest) > 0; {
		var line []byte
		line, rest = facts.NextLine(rest)
		if len(line) == 0 {
			continue
		}
		id, after := facts.Cut(line, ':')
		ctrls, path := facts.Cut(after, ':')
		if after == nil || path == nil || len(path) == 0 || path[0] != '/' {
			return Paths{}, malformed(sc, line)
		}
		if _, ok := facts.ParseUint(id); !ok {
			return Paths{}, malformed(sc, line)
		}
		lines++
		if len(ctrls) == 0 {
			out.Unified = string(path)
			continue
		}
		if out.V1 == nil {
			out.V1 = make(map[string]string, 12)
		}
		// Usually every hierarchy has the same path: share one string.
		if string(path) != last {
			last = string(path)
		}
		for r := ctrls; r != nil; {
			var c []byte
			c, r = facts.Cut(r, ',')
			if len(c) > 0 {
				out.V1[controllerName(c)] = last
			}
		}
	}
	if lines == 0 {
		return Paths{}, malformed(sc, data)
	}
	return out, nil
}

// controllerName returns a constant string for the usual controllers, so
// PathsOf does not allocate one per line.
func controllerName(b []byte) string {
	switch string(b) {
	case "memory":
		return "memory"
	case "cpu":
		return "cpu"
	case "cpuacct":
		return "cpuacct"
	case "cpuset":
		return "cpuset"
	case "pids":
		return "pids"
	case "blkio":
		return "blkio"
	case "devices":
		return "devices"
	case "freezer":
		return "freezer"
	case "net_cls":
		return "net_cls"
	case "net_prio":
		return "net_prio"
	case "perf_event":
		return "perf_event"
	case "hugetlb":
		return "hugetlb"
	case "rdma":
		return "rdma"
	case "misc":
		return "misc"
	case "name=systemd":
		return "name=systemd"
	}
	return string(b)
}
