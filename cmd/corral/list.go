package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/corral-dev/corral/runtime"
	"github.com/corral-dev/corral/runtime/defaultroot"
	"github.com/spf13/cobra"
)

// listCommand is `corral list`, also `corral ps` without an id (docker's
// ps lists containers).
func listCommand(format string, quiet bool) error {
	rt := newRuntime()
	cs, err := rt.List()
	if err != nil {
		return err
	}
	if quiet {
		for _, c := range cs {
			fmt.Println(c.ID())
		}
		return nil
	}
	switch format {
	case "json":
		// runc's format (the OCI state plus extras), which tools parse.
		states := []*runtime.State{}
		for _, c := range cs {
			st, err := c.State()
			if err != nil {
				logger.Warn("container state", "id", c.ID(), "err", err)
				continue
			}
			states = append(states, st)
		}
		return printJSON(states)
	case "table", "":
		w := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
		fmt.Fprint(w, "NAME\tIMAGE/ROOT\tCOMMAND\tSTATUS\tLIMITS\tCREATED\n")
		for _, c := range cs {
			info, err := inspectContainer(rt, c)
			if err != nil {
				logger.Warn("container state", "id", c.ID(), "err", err)
				continue
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", runtime.ShortID(info.ID), imageOrRoot(info), commandColumn(info.Command),
				statusColumn(info), info.Limits, ago(info.Created))
		}
		return w.Flush()
	}
	return fmt.Errorf("unknown --format %q: use table or json", format)
}

// imageOrRoot is the IMAGE/ROOT column: the image's name, "host" for the
// shared default root, else the root directory.
func imageOrRoot(info *containerInfo) string {
	switch {
	case info.Image != "":
		return info.Image
	case strings.HasPrefix(info.Rootfs, defaultroot.DefaultDir+string(filepath.Separator)) || info.Rootfs == defaultroot.DefaultDir:
		return "host (default root)"
	}
	return info.Rootfs
}

// commandColumn quotes the command the way a user typed it, cut to fit.
func commandColumn(args []string) string {
	s := strings.Join(args, " ")
	if len(s) > 30 {
		s = s[:29] + "…"
	}
	return fmt.Sprintf("%q", s)
}

func init() {
	var format string
	var quiet bool
	cmd := &cobra.Command{
		Use:     "list [flags]",
		Aliases: []string{"ls"},
		Short:   "list containers: name, image or root, command, status (exit code), limits, age",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return listCommand(format, quiet)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "table", "table or json (runc's: the state of each container)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the ids")
	rootCmd.AddCommand(cmd)
}
