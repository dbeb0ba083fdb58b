package render

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/fusefs/facts"
)

// errNoIO: the io (v1 blkio) controller could not be read for this
// container.
var errNoIO = errors.New("io controller unavailable")

// Diskstats renders proc/diskstats: the host's lines (name and layout) for
// the devices the container did I/O on, with the container's own counts
// from the cgroup (v1 blkio throttle stats, v2 io.stat): reads completed,
// sectors read, writes completed, sectors written, discards completed and
// sectors discarded (sectors are 512 bytes, whatever the device's block
// size, as in the kernel's file). cgroups do not account merges, times or
// queue depth, so those columns are 0. Devices the container never touched
// are left out.
func Diskstats(dst []byte, in *Input) ([]byte, error) {
	if err, missing := in.Snap.Missing[cgroupreader.GroupIO]; missing {
		return nil, fmt.Errorf("%w: %v", errNoIO, err)
	}
	out := slices.Grow(dst, 128*len(in.Snap.IO))
	if len(in.Snap.IO) == 0 {
		return out, nil
	}
	host := in.Host.Diskstats
	for len(host) > 0 {
		var line []byte
		line, host = facts.NextLine(host)
		major, ok1 := facts.ParseUint(field(line, 0))
		minor, ok2 := facts.ParseUint(field(line, 1))
		if !ok1 || !ok2 {
			continue
		}
		dev := findIODevice(in.Snap.IO, major, minor)
		if dev == nil {
			continue
		}
		out = appendDiskLine(out, line, dev)
	}
	return out, nil
}

func findIODevice(devs []cgroupreader.IODevice, major, minor uint64) *cgroupreader.IODevice {
	for i := range devs {
		if uint64(devs[i].Major) == major && uint64(devs[i].Minor) == minor {
			return &devs[i]
		}
	}
	return nil
}

// appendDiskLine keeps the host line's "major minor name" prefix and
// replaces its statistics, keeping the host's column count (14 fields
// before 4.18, 18 before 5.5, 20 since).
func appendDiskLine(b, hostLine []byte, d *cgroupreader.IODevice) []byte {
	_, nameEnd := fieldBounds(hostLine, 2)
	if nameEnd < 0 {
		return b
	}
	b = append(b, hostLine[:nameEnd]...)
	cols := countFields(hostLine) - 3
	for i := 1; i <= cols; i++ {
		var v uint64
		switch i {
		case 1:
			v = d.ReadIOs
		case 3:
			v = d.ReadBytes / 512
		case 5:
			v = d.WriteIOs
		case 7:
			v = d.WriteBytes / 512
		case 12:
			v = d.DiscardIOs
		case 14:
			v = d.DiscardBytes / 512
		}
		b = append(b, ' ')
		b = strconv.AppendUint(b, v, 10)
	}
	return append(b, '\n')
}
