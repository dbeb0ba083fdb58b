package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"
)

func init() {
	var resFile, memory, memSwap, memRes, cpusetCpus, cpusetMems string
	var cpuQuota, pidsLimit int64
	var cpuPeriod, cpuShares uint64
	var blkioWeight uint16
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
			fl := cmd.Flags()
			var err error
			setBytes := func(name, val string, dst **int64) {
				if err == nil && fl.Changed(name) {
					var n int64
					n, err = parseBytes(val)
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
				setBytes("memory", memory, &r.Memory.Limit)
				setBytes("memory-swap", memSwap, &r.Memory.Swap)
				setBytes("memory-reservation", memRes, &r.Memory.Reservation)
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
					r.CPU.Quota = &cpuQuota
				}
				if fl.Changed("cpu-period") {
					r.CPU.Period = &cpuPeriod
				}
				if fl.Changed("cpu-share") {
					r.CPU.Shares = &cpuShares
				}
				if fl.Changed("cpuset-cpus") {
					r.CPU.Cpus = cpusetCpus
				}
				if fl.Changed("cpuset-mems") {
					r.CPU.Mems = cpusetMems
				}
			}
			if fl.Changed("pids-limit") {
				r.Pids = &specs.LinuxPids{Limit: &pidsLimit}
			}
			if fl.Changed("blkio-weight") {
				r.BlockIO = &specs.LinuxBlockIO{Weight: &blkioWeight}
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
	f.StringVar(&memory, "memory", "", "memory limit (bytes, or with k/m/g suffix; -1 for none)")
	f.StringVar(&memSwap, "memory-swap", "", "memory+swap limit")
	f.StringVar(&memRes, "memory-reservation", "", "memory soft limit")
	f.Int64Var(&cpuQuota, "cpu-quota", 0, "CFS quota in microseconds per period (-1 for none)")
	f.Uint64Var(&cpuPeriod, "cpu-period", 0, "CFS period in microseconds")
	f.Uint64Var(&cpuShares, "cpu-share", 0, "CPU shares (relative weight)")
	f.StringVar(&cpusetCpus, "cpuset-cpus", "", "CPUs allowed (e.g. 0-1)")
	f.StringVar(&cpusetMems, "cpuset-mems", "", "memory nodes allowed")
	f.Int64Var(&pidsLimit, "pids-limit", 0, "maximum number of tasks (-1 or 0 for none)")
	f.Uint16Var(&blkioWeight, "blkio-weight", 0, "block I/O weight (10-1000)")
	rootCmd.AddCommand(cmd)
}

// parseBytes reads 1024, 512k, 256m, 2g (powers of 1024), or -1.
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "-1" {
		return -1, nil
	}
	mult := int64(1)
	s = strings.TrimSuffix(s, "b")
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k':
			mult, s = 1<<10, s[:n-1]
		case 'm':
			mult, s = 1<<20, s[:n-1]
		case 'g':
			mult, s = 1<<30, s[:n-1]
		case 't':
			mult, s = 1<<40, s[:n-1]
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	return v * mult, nil
}
