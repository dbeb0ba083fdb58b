package main

import (
	"github.com/corral-dev/corral/runtime"
	"github.com/spf13/cobra"
)

func init() {
	var all bool
	cmd := &cobra.Command{
		Use:   "kill [flags] ID [SIGNAL]",
		Short: "send a signal (default SIGTERM; names with or without SIG, or numbers) to the container",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := "SIGTERM"
			if len(args) == 2 {
				name = args[1]
			}
			sig, err := runtime.ParseSignal(name)
			if err != nil {
				return err
			}
			c, err := newRuntime().Load(args[0])
			if err != nil {
				return err
			}
			return c.Signal(sig, all)
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "signal every process of the container, not only its init")
	rootCmd.AddCommand(cmd)
}
