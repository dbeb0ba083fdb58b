package render

import (
	"strings"
	"testing"

	"github.com/corral-dev/corral/cgroupreader"
)

func TestDiskstats(t *testing.T) {
	// Three kernel generations of the file: 14, 18 and 20 fields.
	host := "   8       0 sda 1 2 3 4 5 6 7 8 9 10 11\n" +
		"   8       1 sda1 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15\n" +
		" 254      16 vdb 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n" +
		" 254      32 vdc 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n"
	in := &Input{Host: Host{Diskstats: []byte(host)}}
	in.Snap.IO = []cgroupreader.IODevice{
		{Major: 8, Minor: 0, ReadBytes: 1024, WriteBytes: 2048, ReadIOs: 1, WriteIOs: 2},
		{Major: 8, Minor: 1, ReadBytes: 512, ReadIOs: 3},
		{Major: 9, Minor: 9, ReadBytes: 512, ReadIOs: 3}, // not in the host's file: left out
		{Major: 254, Minor: 16, ReadBytes: 5120, WriteBytes: 10240, ReadIOs: 4, WriteIOs: 5, DiscardBytes: 4096, DiscardIOs: 6},
	}
	got, err := Diskstats(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	want := "   8       0 sda 1 0 2 0 2 0 4 0 0 0 0\n" +
		"   8       1 sda1 3 0 1 0 0 0 0 0 0 0 0 0 0 0 0\n" +
		" 254      16 vdb 4 0 10 0 5 0 20 0 0 0 0 6 0 8 0 0 0\n"
	if string(got) != want {
		t.Errorf("Diskstats =\n%s\nwant\n%s", got, want)
	}
	checkViewGrammar(t, "proc/diskstats", got)

	// No I/O at all: an empty file, not the host's devices.
	in.Snap.IO = nil
	if got, err := Diskstats(nil, in); err != nil || len(got) != 0 {
		t.Errorf("no I/O: %q, %v", got, err)
	}
	// The io controller missing: fall back.
	in.Snap.Missing = map[string]error{"io": errNoMemory}
	if _, err := Diskstats(nil, in); err == nil || !strings.Contains(err.Error(), "io") {
		t.Errorf("io missing: err = %v", err)
	}
}
