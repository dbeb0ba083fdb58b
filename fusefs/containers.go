package fusefs

import (
	"sort"
	"sync"
	"time"

	"github.com/corral-dev/corral/fusefs/survival"
)

// ContainerInfo is one container as the serving worker knows it, for
// `corralfs status --containers`: who it is and whether (and why) it was
// last served the host's numbers instead of its own.
type ContainerInfo struct {
	PidNS        uint64    `json:"pidns"`              // pid namespace inode; 0: callers that could not be identified
	InitPid      int       `json:"init_pid,omitempty"` // host pid of its init
	Cgroup       string    `json:"cgroup,omitempty"`   // the init's cgroup (v1/hybrid: the memory controller's)
	Fallbacks    uint64    `json:"fallbacks"`          // reads served from the host's file
	LastFallback string    `json:"last_fallback,omitempty"`
	LastReason   string    `json:"last_reason,omitempty"` // a survival.FallbackReasons entry
	LastError    string    `json:"last_error,omitempty"`
	LastAt       time.Time `json:"last_at,omitzero"`
}

// fallbackTally is what one pid namespace was served from the host.
type fallbackTally struct {
	n      uint64
	path   string
	reason int
	err    string
	at     time.Time
}

// fallbackLog keeps a tally per pid namespace. Bounded: when full it
// starts over (the Prometheus counters keep the totals).
type fallbackLog struct {
	mu sync.Mutex
	m  map[uint64]*fallbackTally
}

const fallbackLogMax = 4096

func (l *fallbackLog) note(ns uint64, path string, reason int, why error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil || len(l.m) >= fallbackLogMax {
		l.m = map[uint64]*fallbackTally{}
	}
	t := l.m[ns]
	if t == nil {
		t = &fallbackTally{}
		l.m[ns] = t
	}
	t.n++
	t.path, t.reason, t.at = path, reason, time.Now()
	t.err = ""
	if why != nil {
		t.err = why.Error()
	}
}

// Containers lists the containers the caller cache holds, plus any pid
// namespace that was served host values, by pid namespace.
func (fs *FS) Containers() []ContainerInfo {
	byNS := map[uint64]*ContainerInfo{}
	for _, k := range fs.resolver.Known() {
		byNS[k.PidNS] = &ContainerInfo{PidNS: k.PidNS, InitPid: k.InitPid, Cgroup: k.Cgroup}
	}
	fs.fallbacks.mu.Lock()
	for ns, t := range fs.fallbacks.m {
		ci := byNS[ns]
		if ci == nil {
			ci = &ContainerInfo{PidNS: ns}
			byNS[ns] = ci
		}
		ci.Fallbacks, ci.LastFallback, ci.LastError, ci.LastAt = t.n, t.path, t.err, t.at
		if t.reason >= 0 && t.reason < len(survival.FallbackReasons) {
			ci.LastReason = survival.FallbackReasons[t.reason]
		}
	}
	fs.fallbacks.mu.Unlock()
	out := make([]ContainerInfo, 0, len(byNS))
	for _, ci := range byNS {
		out = append(out, *ci)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PidNS < out[j].PidNS })
	return out
}
