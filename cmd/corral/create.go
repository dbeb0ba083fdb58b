package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/corral-dev/corral/fusefs/facts"
	"github.com/corral-dev/corral/runtime"
	"github.com/corral-dev/corral/runtime/runspec"
)

func init() {
	var o runtime.CreateOpts
	var preserveFDs int
	cmd := &cobra.Command{
		Use:   "create [flags] ID",
		Short: "create a container from an OCI bundle; its process waits for `start`",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Stdin, o.Stdout, o.Stderr = os.Stdin, os.Stdout, os.Stderr
			o.ExtraFiles = preservedFiles(preserveFDs)
			// The bundle's spec with corralfs's views added when one serves
			// (runspec.ForEngine); one that does not load is left to
			// Create, which says why.
			if spec, err := runtime.LoadSpec(o.Bundle); err == nil {
				sock := os.Getenv(runspec.EnvSeccompSocket)
				if sock == "" {
					sock = facts.SeccompSocket
				}
				for _, n := range runspec.ForEngine(spec, runspec.ProbeHost(sock, nil)) {
					fmt.Fprintf(os.Stderr, "corral: %s\n", n)
				}
				o.Spec = spec
			}
			_, err := newRuntime().Create(args[0], o)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Bundle, "bundle", "b", ".", "bundle directory (holds config.json)")
	f.StringVar(&o.PidFile, "pid-file", "", "write the container's init pid to this file")
	f.StringVar(&o.ConsoleSocket, "console-socket", "", "unix socket that receives the pty master (terminal: true)")
	f.BoolVar(&o.NoPivot, "no-pivot", false, "use MS_MOVE and chroot instead of pivot_root (rootfs on a ramdisk)")
	f.IntVar(&preserveFDs, "preserve-fds", 0, "pass this many extra fds (3, 4, ...) into the container")
	f.BoolVar(&o.NoNewKeyring, "no-new-keyring", false, "keep the caller's session keyring instead of a new _ses.ID one")
	rootCmd.AddCommand(cmd)
}

// preservedFiles returns fds 3..3+n-1 of this process (runc's --preserve-fds).
func preservedFiles(n int) []*os.File {
	var out []*os.File
	for i := 0; i < n; i++ {
		out = append(out, os.NewFile(uintptr(3+i), "preserved-fd"))
	}
	return out
}
