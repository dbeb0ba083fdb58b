package main

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/runtime"
)

func init() {
	var timeout int
	cmd := &cobra.Command{
		Use:   "stop [-t SECONDS] ID...",
		Short: "stop running containers: SIGTERM, then SIGKILL after a grace period",
		Long: `Stop the containers, all at once, as docker stop does: SIGTERM to each
main process, then, if it is still running after --time seconds (default
10), SIGKILL to every process of the container. A stopped container stays (its exit code
in 'corral inspect') until 'corral delete'; one started with --rm goes.

A main process that is PID 1 of its container and has no handler for
SIGTERM never sees it (the kernel protects a namespace's init): such a
container waits out the grace period. 'corral run --init' puts a small
init in front that passes SIGTERM on.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if timeout < 0 {
				return fmt.Errorf("--time %d: want seconds >= 0", timeout)
			}
			rt := newRuntime()
			// All at once, as docker does: one after the other, N
			// containers that ignore SIGTERM took N grace periods.
			var mu sync.Mutex
			var wg sync.WaitGroup
			errs := make([]error, len(args))
			for i, id := range args {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = stopContainer(rt, id, time.Duration(timeout)*time.Second)
					if errs[i] == nil {
						mu.Lock()
						fmt.Println(id)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			return errors.Join(errs...)
		},
	}
	cmd.Flags().IntVarP(&timeout, "time", "t", 10, "seconds to wait after SIGTERM before SIGKILL")
	rootCmd.AddCommand(cmd)
}

// stopContainer signals and waits; a container that is already stopped
// is not an error (docker stop says nothing either).
func stopContainer(rt *runtime.Runtime, id string, grace time.Duration) error {
	c, err := rt.Load(id)
	if err != nil {
		return err
	}
	st, err := c.Status()
	if err != nil {
		return err
	}
	switch st {
	case runtime.Stopped:
		return nil
	case runtime.Created, runtime.Creating:
		// Nothing of the user's runs yet: no reason for a grace period.
		grace = 0
	}
	if grace > 0 {
		if err := c.Signal(unix.SIGTERM, false); err != nil {
			return err
		}
		if waitStopped(c, grace) {
			return nil
		}
	}
	if err := c.Signal(unix.SIGKILL, true); err != nil {
		if st, serr := c.Status(); serr == nil && st == runtime.Stopped {
			return nil // it ended on its own meanwhile
		}
		return err
	}
	if !waitStopped(c, 10*time.Second) {
		return fmt.Errorf("container %q still runs 10 s after SIGKILL", id)
	}
	return nil
}

// waitStopped polls the status until stopped or d has passed.
func waitStopped(c *runtime.Container, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if st, err := c.Status(); err != nil || st == runtime.Stopped {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
