package main

import (
	"github.com/corral-dev/corral/runtime"
	"github.com/spf13/cobra"
)

func init() {
	rootCmd.AddCommand(&cobra.Command{
		Use:   "features",
		Short: "print what this runtime implements (runtime-spec features.md JSON)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return printJSON(runtime.Features())
		},
	})
}
