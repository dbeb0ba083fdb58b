package main

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/pflag"
)

// TestUpdateSizesAsRun: `corral update` reads sizes as `corral run -m`
// does (it used to refuse 1.5g), plus -1 for no limit.
func TestUpdateSizesAsRun(t *testing.T) {
	parse := func(args ...string) (*specs.LinuxResources, error) {
		var u updateFlags
		fl := pflag.NewFlagSet("update", pflag.ContinueOnError)
		u.addFlags(fl)
		if err := fl.Parse(args); err != nil {
			t.Fatal(err)
		}
		r := &specs.LinuxResources{}
		return r, u.apply(fl, r)
	}
	r, err := parse("--memory", "1.5g", "--memory-swap", "-1", "--memory-reservation", "256MiB")
	if err != nil {
		t.Fatal(err)
	}
	if m := r.Memory; *m.Limit != 3<<29 || *m.Swap != -1 || *m.Reservation != 256<<20 {
		t.Errorf("memory %d swap %d reservation %d", *m.Limit, *m.Swap, *m.Reservation)
	}
	if _, err := parse("--memory", "lots"); err == nil || !strings.Contains(err.Error(), "--memory: invalid size") {
		t.Errorf("--memory lots: %v", err)
	}
	r, err = parse("--pids-limit", "5")
	if err != nil || r.Memory != nil || *r.Pids.Limit != 5 {
		t.Errorf("--pids-limit alone: %v, memory %v", err, r.Memory)
	}
}
