package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

func init() {
	var format string
	cmd := &cobra.Command{
		Use:   "ps [flags] [ID [-- PS_ARGS...]]",
		Short: "list the container's processes (ps output filtered to them, or their pids as JSON); without ID, the containers",
		Long: `With an ID, list the container's processes: the host's ps output (ps -ef,
or PS_ARGS) filtered to them, or their pids with --format json, as runc
does. Without an ID, list the containers, as 'corral list' (and docker ps).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return listCommand(format, false)
			}
			c, err := newRuntime().Load(args[0])
			if err != nil {
				return err
			}
			pids, err := c.Processes()
			if err != nil {
				return err
			}
			switch format {
			case "json":
				if pids == nil {
					pids = []int{}
				}
				return printJSON(pids)
			case "table", "":
				return psTable(pids, args[1:])
			default:
				return fmt.Errorf("unknown --format %q: use table or json", format)
			}
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "table", "table or json")
	rootCmd.AddCommand(cmd)
}

// psTable runs the host's ps (default `ps -ef`) and keeps the header and
// the rows whose PID column is one of the container's, as runc does.
func psTable(pids []int, psArgs []string) error {
	if len(psArgs) == 0 {
		psArgs = []string{"-ef"}
	}
	out, err := exec.Command("ps", psArgs...).Output()
	if err != nil {
		return fmt.Errorf("ps %s: %w", strings.Join(psArgs, " "), err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	if !sc.Scan() {
		return fmt.Errorf("ps printed nothing")
	}
	header := sc.Text()
	col := -1
	for i, f := range strings.Fields(header) {
		if f == "PID" {
			col = i
		}
	}
	if col < 0 {
		return fmt.Errorf("ps output has no PID column")
	}
	want := map[int]bool{}
	for _, p := range pids {
		want[p] = true
	}
	fmt.Println(header)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > col {
			if p, err := strconv.Atoi(f[col]); err == nil && want[p] {
				fmt.Println(sc.Text())
			}
		}
	}
	_ = os.Stdout.Sync()
	return sc.Err()
}
