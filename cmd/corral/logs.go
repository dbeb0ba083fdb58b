package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/corral-dev/corral/runtime"
)

func init() {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs [-f] ID",
		Short: "print the output of a detached container (-f: follow it until the container stops)",
		Long: `Print what a container started with 'corral run -d' wrote to its stdout
and stderr (kept in ROOT/ID.log until 'corral delete'). With -f, keep
printing new output until the container stops, as docker logs -f does.
An attached container's output went to its terminal: there is no log.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt := newRuntime()
			id := args[0]
			c, err := rt.Load(id)
			if err != nil {
				return err
			}
			f, err := os.Open(detachLogPath(rt, id))
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("container %q has no log: only 'corral run -d' keeps one (an attached container's output went to its terminal)", id)
			}
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(os.Stdout, f); err != nil || !follow {
				return err
			}
			return followLog(c, f)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output until the container stops")
	rootCmd.AddCommand(cmd)
}

// followLog copies what is appended to f until the container has
// stopped (or was removed) and everything it wrote is printed.
func followLog(c *runtime.Container, f *os.File) error {
	for {
		st, err := c.Status()
		stopped := err != nil || st == runtime.Stopped
		// Copy after reading the status: output written before the
		// container stopped is printed before we return.
		if _, err := io.Copy(os.Stdout, f); err != nil {
			return err
		}
		if stopped {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}
