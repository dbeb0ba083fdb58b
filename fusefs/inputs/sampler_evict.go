package inputs

import (
	"strings"

	"github.com/corral-dev/corral/cgroupreader"
)

// evictLocked frees one sampler slot (s.mu held). An entry whose cgroup
// vanished goes first. Else the victim comes from the largest subtree:
// starting at the hierarchy's root, it descends into the child subtree
// holding the most entries (ties: the one read least recently) until a
// subtree is a single cgroup, and evicts there the entry read least
// recently. Containers are sibling subtrees, so a container that fills the
// sampler with cgroups of its own, however nested, loses its own entries
// first; a container with one entry is evicted only when no subtree holds
// more, i.e. when every container already has as few slots as it.
func (s *Sampler) evictLocked() {
	var victim *loadEntry
	for _, e := range s.entries {
		if e.gone && (victim == nil || e.lastRead.Before(victim.lastRead)) {
			victim = e
		}
	}
	if victim == nil {
		list := make([]*loadEntry, 0, len(s.entries))
		for _, e := range s.entries {
			list = append(list, e)
		}
		victim = largestSubtreeLRU(list)
	}
	if victim != nil {
		delete(s.entries, victim.key)
		s.evicted++
	}
}

// largestSubtreeLRU is the eviction choice among list (see evictLocked).
func largestSubtreeLRU(list []*loadEntry) *loadEntry {
	for depth := 0; len(list) > 1; depth++ {
		groups := map[string][]*loadEntry{}
		for _, e := range list {
			c := pathComponent(treePath(e.paths), depth)
			groups[c] = append(groups[c], e)
		}
		var best string
		bestSize := -1
		for c, g := range groups {
			size := len(g)
			if c == "" {
				// The cgroup at this level itself, the parent of the
				// others: a subtree of one.
				size = 1
			}
			if size > bestSize || size == bestSize && oldest(g).lastRead.Before(oldest(groups[best]).lastRead) {
				best, bestSize = c, size
			}
		}
		if best == "" {
			return oldest(groups[best])
		}
		list = groups[best]
	}
	return oldest(list)
}

func oldest(list []*loadEntry) *loadEntry {
	var o *loadEntry
	for _, e := range list {
		if o == nil || e.lastRead.Before(o.lastRead) {
			o = e
		}
	}
	return o
}

// treePath is the cgroup path that places an entry in the hierarchy.
func treePath(p cgroupreader.Paths) string {
	if p.Unified != "" && len(p.V1) == 0 {
		return p.Unified
	}
	for _, c := range []string{"cpuacct", "cpu", "memory", "pids"} {
		if v := p.V1[c]; v != "" {
			return v
		}
	}
	return p.Unified
}

// pathComponent is the i-th component of a cgroup path ("" past its end).
func pathComponent(p string, i int) string {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	if p == "/" || p == "" || i >= len(parts) {
		return ""
	}
	return parts[i]
}
