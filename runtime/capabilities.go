package runtime

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// capMasks are the five capability sets of a process spec as bit masks.
type capMasks struct {
	bounding, effective, permitted, inheritable, ambient uint64
}

// resolveCaps maps the spec's capability names to masks. Names this kernel
// or corral does not know, and capabilities corral itself does not hold (a
// sandbox may withhold some, e.g. CAP_SYS_RESOURCE), are left out with a
// warning, like runc does for unknown ones.
func (ps *processSetup) resolveCaps() (capMasks, error) {
	var m capMasks
	c := ps.p.Capabilities
	if c == nil {
		return m, nil
	}
	own, err := ownPermitted()
	if err != nil {
		return m, err
	}
	last := lastCap()
	conv := func(names []string) uint64 {
		var mask uint64
		for _, n := range names {
			bit, ok := capNames[n]
			switch {
			case !ok || bit > last:
				ps.warnOnce("unknown capability %s ignored", n)
			case own&(1<<bit) == 0:
				ps.warnOnce("capability %s ignored: corral itself does not have it", n)
			default:
				mask |= 1 << bit
			}
		}
		return mask
	}
	m.bounding = conv(c.Bounding)
	m.effective = conv(c.Effective)
	m.permitted = conv(c.Permitted)
	m.inheritable = conv(c.Inheritable)
	m.ambient = conv(c.Ambient)
	return m, nil
}

func (ps *processSetup) warnOnce(format string, args ...any) {
	w := fmt.Sprintf(format, args...)
	for _, x := range ps.warnings {
		if x == w {
			return
		}
	}
	ps.warnings = append(ps.warnings, w)
}

func ownPermitted() (uint64, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, fmt.Errorf("capget: %w", err)
	}
	return uint64(data[0].Permitted) | uint64(data[1].Permitted)<<32, nil
}

// dropBounding removes every capability not in the bounding set; it needs
// CAP_SETPCAP, so it runs before the user switch.
func dropBounding(bounding uint64) error {
	last := lastCap()
	for bit := 0; bit <= last; bit++ {
		if bounding&(1<<bit) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(bit), 0, 0, 0); err != nil {
			if err == unix.EINVAL { // the kernel does not know it
				continue
			}
			return fmt.Errorf("drop capability %d from the bounding set: %w", bit, err)
		}
	}
	return nil
}

// applyCaps sets effective, permitted and inheritable, then raises the
// ambient ones. The kernel refuses an ambient capability that is not in
// both permitted and inheritable; like runc, that is a warning, not a
// failure: `runc spec` bundles (runc >= 1.1.2, after CVE-2022-29162) list
// ambient capabilities with no inheritable set, and runc runs them.
func applyCaps(m capMasks, warn func(format string, args ...any)) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(m.effective), Permitted: uint32(m.permitted), Inheritable: uint32(m.inheritable)},
		{Effective: uint32(m.effective >> 32), Permitted: uint32(m.permitted >> 32), Inheritable: uint32(m.inheritable >> 32)},
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	for bit := 0; bit < 64; bit++ {
		if m.ambient&(1<<bit) == 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(bit), 0, 0); err != nil {
			warn("cannot raise ambient capability %d (it must be permitted and inheritable): %v", bit, err)
		}
	}
	return nil
}
