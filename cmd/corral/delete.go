package main

import (
	"errors"
	"os"

	"github.com/corral-dev/corral/runtime"
	"github.com/spf13/cobra"
)

func init() {
	var force bool
	cmd := &cobra.Command{
		Use:     "delete [flags] ID...",
		Aliases: []string{"rm"},
		Short:   "delete stopped containers (--force: kill running ones first)",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt := newRuntime()
			var errs []error
			for _, id := range args {
				c, err := rt.Load(id)
				if err != nil && force {
					// A create killed before it wrote any state left
					// only its directory: remove it, so the id is free.
					if removed, rerr := rt.RemoveStale(id); removed || rerr != nil {
						if rerr != nil {
							errs = append(errs, rerr)
						}
						continue
					}
				}
				if err != nil {
					// runc: deleting a missing container with --force is not an error.
					if force && errors.Is(err, runtime.ErrNotExist) {
						continue
					}
					errs = append(errs, err)
					continue
				}
				if err := c.Delete(force); err != nil {
					errs = append(errs, err)
					continue
				}
				// A detached container's output goes with it.
				if err := os.Remove(detachLogPath(rt, id)); err != nil && !errors.Is(err, os.ErrNotExist) {
					errs = append(errs, err)
				}
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill the container's processes if it is running")
	rootCmd.AddCommand(cmd)
}
