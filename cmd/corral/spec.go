package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/corral-dev/corral/runtime"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"
)

func specVersion() string { return specs.Version }

func init() {
	var bundle string
	var rootless bool
	cmd := &cobra.Command{
		Use:   "spec [flags]",
		Short: "write a default config.json (Docker's default capabilities, runc's masked paths) to the bundle",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			file := filepath.Join(bundle, "config.json")
			if _, err := os.Stat(file); err == nil {
				return fmt.Errorf("%s already exists: remove it first", file)
			}
			spec := runtime.DefaultSpec()
			if rootless {
				// runc's rootless spec: a user namespace in which the
				// caller's own uid and gid are root (what it may map
				// without newuidmap). The runtime leaves out what only
				// the host's root could do (device cgroup, devpts gid=5).
				own := func(id int) []specs.LinuxIDMapping {
					return []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(id), Size: 1}}
				}
				setMaps(spec, own(os.Geteuid()), own(os.Getegid()))
			}
			data, err := json.MarshalIndent(spec, "", "\t")
			if err != nil {
				return err
			}
			return os.WriteFile(file, append(data, '\n'), 0o666)
		},
	}
	cmd.Flags().StringVarP(&bundle, "bundle", "b", ".", "bundle directory to write config.json into")
	cmd.Flags().BoolVar(&rootless, "rootless", false, "generate a spec for an unprivileged user: a user namespace mapping your uid and gid to root")
	rootCmd.AddCommand(cmd)
}
