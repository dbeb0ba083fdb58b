package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/corral-dev/corral/fusefs/facts"
)

// updateFlags are `corral update`'s single-limit flags.
type updateFlags struct {
	memory, memSwap, memRes, cpusetCpus, cpusetMems string
	cpuQuota, pidsLimit                             int64
	cpuPeriod, cpuShares                            uint64
	blkioWeight                                     uint16
}

func init() {
	var resFile string
	var u updateFlags
	cmd := &cobra.Command{
		Use:   "update [flags] ID",
		Short: "change the container's cgroup limits (--resources FILE|- as JSON, or single flags)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r := &specs.LinuxResources{}
			if resFile != "" {
				var in io.Reader = os.Stdin
				if resFile != "-" {
					f, err := os.Open(resFile)
					if err != nil {
						return err
					}
					defer f.Close()
					in = f
				}
				if err := json.NewDecoder(in).Decode(r); err != nil {
					return fmt.Errorf("malformed resources %s: %w", resFile, err)
				}
			}
			if err := u.apply(cmd.Flags(), r); err != nil {
				return err
			}
			c, err := newRuntime().Load(args[0])
			if err != nil {
				return err
			}
			return c.Update(r)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&resFile, "resources", "r", "", "JSON file with linux.resources (\"-\" for stdin)")
	u.addFlags(f)
	rootCmd.AddCommand(cmd)
}

func (u *updateFlags) addFlags(f *pflag.FlagSet) {
	f.StringVar(&u.memory, "memory", "", "memory limit: bytes or with a unit, as corral run -m (256m, 1.5g); -1 for none")
	f.StringVar(&u.memSwap, "memory-swap", "", "memory+swap limit (same units; -1 for none)")
	f.StringVar(&u.memRes, "memory-reservation", "", "memory soft limit (same units)")
	f.Int64Var(&u.cpuQuota, "cpu-quota", 0, "CFS quota in microseconds per period (-1 for none)")
	f.Uint64Var(&u.cpuPeriod, "cpu-period", 0, "CFS period in microseconds")
	f.Uint64Var(&u.cpuShares, "cpu-share", 0, "CPU shares (relative weight)")
	f.StringVar(&u.cpusetCpus, "cpuset-cpus", "", "CPUs allowed (e.g. 0-1)")
	f.StringVar(&u.cpusetMems, "cpuset-mems", "", "memory nodes allowed")
	f.Int64Var(&u.pidsLimit, "pids-limit", 0, "maximum number of tasks (-1 or 0 for none)")
	f.Uint16Var(&u.blkioWeight, "blkio-weight", 0, "block I/O weight (10-1000)")
}

// apply sets in r the limits whose flags were given (fl.Changed), over
// what --resources gave.
func (u *updateFlags) apply(fl *pflag.FlagSet, r *specs.LinuxResources) error {
	var err error
	setBytes := func(name, val string, dst **int64) {
		if err == nil && fl.Changed(name) {
			var n int64
			n, err = updateSize(val)
			if err != nil {
				err = fmt.Errorf("--%s: %w", name, err)
			}
			*dst = &n
		}
	}
	if fl.Changed("memory") || fl.Changed("memory-swap") || fl.Changed("memory-reservation") {
		if r.Memory == nil {
			r.Memory = &specs.LinuxMemory{}
		}
		setBytes("memory", u.memory, &r.Memory.Limit)
		setBytes("memory-swap", u.memSwap, &r.Memory.Swap)
		setBytes("memory-reservation", u.memRes, &r.Memory.Reservation)
	}
	if err != nil {
		return err
	}
	if fl.Changed("cpu-quota") || fl.Changed("cpu-period") || fl.Changed("cpu-share") ||
		fl.Changed("cpuset-cpus") || fl.Changed("cpuset-mems") {
		if r.CPU == nil {
			r.CPU = &specs.LinuxCPU{}
		}
		if fl.Changed("cpu-quota") {
			r.CPU.Quota = &u.cpuQuota
		}
		if fl.Changed("cpu-period") {
			r.CPU.Period = &u.cpuPeriod
		}
		if fl.Changed("cpu-share") {
			r.CPU.Shares = &u.cpuShares
		}
		if fl.Changed("cpuset-cpus") {
			r.CPU.Cpus = u.cpusetCpus
		}
		if fl.Changed("cpuset-mems") {
			r.CPU.Mems = u.cpusetMems
		}
	}
	if fl.Changed("pids-limit") {
		r.Pids = &specs.LinuxPids{Limit: &u.pidsLimit}
	}
	if fl.Changed("blkio-weight") {
		r.BlockIO = &specs.LinuxBlockIO{Weight: &u.blkioWeight}
	}
	return nil
}

// updateSize reads a size in the one grammar of every size flag
// (facts.ParseSize, as `corral run -m`), or -1: no limit.
func updateSize(s string) (int64, error) {
	if strings.TrimSpace(s) == "-1" {
		return -1, nil
	}
	return facts.ParseSize(s)
}
