package main

import "github.com/spf13/cobra"

func init() {
	rootCmd.AddCommand(&cobra.Command{
		Use:   "pause ID",
		Short: "freeze every process of the container",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newRuntime().Load(args[0])
			if err != nil {
				return err
			}
			return c.Pause()
		},
	}, &cobra.Command{
		Use:   "resume ID",
		Short: "thaw a paused container",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newRuntime().Load(args[0])
			if err != nil {
				return err
			}
			return c.Resume()
		},
	})
}
