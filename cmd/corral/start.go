package main

import "github.com/spf13/cobra"

func init() {
	rootCmd.AddCommand(&cobra.Command{
		Use:   "start ID",
		Short: "run the user's process of a created container",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newRuntime().Load(args[0])
			if err != nil {
				return err
			}
			return c.Start()
		},
	})
}
