package main

import (
	"encoding/json"
	"errors"
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
			if rootless {
				return errors.New("--rootless: rootless containers are not supported")
			}
			file := filepath.Join(bundle, "config.json")
			if _, err := os.Stat(file); err == nil {
				return fmt.Errorf("%s already exists: remove it first", file)
			}
			data, err := json.MarshalIndent(runtime.DefaultSpec(), "", "\t")
			if err != nil {
				return err
			}
			return os.WriteFile(file, append(data, '\n'), 0o666)
		},
	}
	cmd.Flags().StringVarP(&bundle, "bundle", "b", ".", "bundle directory to write config.json into")
	cmd.Flags().BoolVar(&rootless, "rootless", false, "generate a rootless spec (not supported)")
	rootCmd.AddCommand(cmd)
}
