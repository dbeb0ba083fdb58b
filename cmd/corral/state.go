package main

import (
	"encoding/json"
	"os"

	"github.com/spf13/cobra"
)

func init() {
	rootCmd.AddCommand(&cobra.Command{
		Use:   "state ID",
		Short: "print the container's state as JSON (OCI runtime spec)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newRuntime().Load(args[0])
			if err != nil {
				return err
			}
			st, err := c.State()
			if err != nil {
				return err
			}
			return printJSON(st)
		},
	})
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
