package main

import (
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/corral-dev/corral/runtime"
	"github.com/spf13/cobra"
)

func init() {
	var format string
	var quiet bool
	cmd := &cobra.Command{
		Use:     "list [flags]",
		Aliases: []string{"ls"},
		Short:   "list containers",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cs, err := newRuntime().List()
			if err != nil {
				return err
			}
			if quiet {
				for _, c := range cs {
					fmt.Println(c.ID())
				}
				return nil
			}
			states := []*runtime.State{}
			for _, c := range cs {
				st, err := c.State()
				if err != nil {
					logger.Warn("container state", "id", c.ID(), "err", err)
					continue
				}
				states = append(states, st)
			}
			switch format {
			case "json":
				return printJSON(states)
			case "table", "":
				w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
				fmt.Fprint(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\n")
				for _, s := range states {
					fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", s.ID, s.Pid, s.Status, s.Bundle, s.Created.Format(time.RFC3339Nano))
				}
				return w.Flush()
			default:
				return fmt.Errorf("unknown --format %q: use table or json", format)
			}
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "table", "table or json")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the ids")
	rootCmd.AddCommand(cmd)
}
