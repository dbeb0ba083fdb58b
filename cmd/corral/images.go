package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/runtime/image"
)

// storeRoot is the image store directory: --store, else $CORRAL_STORE,
// else /var/lib/corral.
func newStore() *image.Store {
	root := global.store
	if root == "" {
		root = os.Getenv("CORRAL_STORE")
	}
	if root == "" {
		root = image.DefaultRoot
	}
	return &image.Store{Root: root}
}

func init() {
	rootCmd.PersistentFlags().StringVar(&global.store, "store", "", "image store directory (default $CORRAL_STORE, else "+image.DefaultRoot+")")

	rootCmd.AddCommand(&cobra.Command{
		Use:   "pull REF",
		Short: "fetch an image from its registry into the local store",
		Long: `Fetch an image from its registry into the local image store, as docker
pull does: "alpine" is docker.io/library/alpine:latest; REGISTRY/NAME:TAG
and NAME@sha256:DIGEST work too; localhost and loopback registries are
spoken to over plain http. Credentials come from the usual docker config
($DOCKER_CONFIG or ~/.docker/config.json, credential helpers included):
'docker login' once is enough. Of a multi-platform image, the linux image
of this machine's architecture is taken.

Every blob is checked against its digest and each layer is unpacked once
into the store (shared by every image that has it); a layer that fails
its digest, is truncated or tries to write outside itself ('../' names,
writing through a symlink) is refused and nothing of it is kept.

  corral pull alpine:3.19
  corral run --rm --memory 256m alpine:3.19 free -m`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, unix.SIGTERM)
			defer stop()
			rec, err := newStore().Pull(ctx, args[0])
			if err != nil {
				return err
			}
			fmt.Printf("%s: %s\n", displayName(rec.Given[0]), rec.ID)
			return nil
		},
	})

	var input string
	load := &cobra.Command{
		Use:   "load -i FILE",
		Short: "store the images of a docker save or podman save archive",
		Long: `Store the images of an archive written by 'docker save' or 'podman save'
(docker-archive, the default of both) or 'podman save --format
oci-archive' (an OCI image layout), named by the tags the archive
carries. The same checks as 'corral pull' apply to every layer.

  docker save -o app.tar app:1 && corral load -i app.tar && corral run app:1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if input == "" {
				return errors.New("load: give the archive with -i FILE")
			}
			recs, err := newStore().Load(input)
			if err != nil {
				return err
			}
			for _, r := range recs {
				if len(r.Given) == 0 {
					fmt.Printf("Loaded image ID: %s\n", r.ID)
				}
				for _, n := range r.Given {
					fmt.Printf("Loaded image: %s\n", displayName(n))
				}
			}
			return nil
		},
	}
	load.Flags().StringVarP(&input, "input", "i", "", "the archive (a tar file)")
	rootCmd.AddCommand(load)

	var quiet bool
	images := &cobra.Command{
		Use:   "images",
		Short: "list the images of the local store",
		Long:  "List the local images: name, image id (the config's digest), when the image was built, its unpacked size.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			recs, err := newStore().List()
			if err != nil {
				return err
			}
			if quiet {
				for _, r := range recs {
					fmt.Println(r.ShortID())
				}
				return nil
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
			fmt.Fprintln(w, "NAME\tIMAGE ID\tCREATED\tSIZE")
			for _, r := range recs {
				names := r.Names
				if len(names) == 0 {
					names = []string{"<none>"}
				}
				for _, n := range names {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", displayName(n), r.ShortID(), ago(r.Created), humanBytes(r.Size))
				}
			}
			return w.Flush()
		},
	}
	images.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the image ids")
	rootCmd.AddCommand(images)

	rootCmd.AddCommand(&cobra.Command{
		Use:   "rmi REF...",
		Short: "remove images (by name or id) from the local store",
		Long: `Remove images from the local store. A name removes that name; the image
goes with its last name (or when given by id), together with the layers
no other image shares. An image a container's root still uses is kept:
delete the container first.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s := newStore()
			var errs []error
			for _, ref := range args {
				r, err := s.Remove(ref)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				for _, n := range r.Untagged {
					fmt.Printf("Untagged: %s\n", displayName(n))
				}
				if r.Deleted != "" {
					fmt.Printf("Deleted: %s\n", r.Deleted)
				}
			}
			return errors.Join(errs...)
		},
	})
}

// displayName drops docker hub's implicit parts, as docker prints names:
// index.docker.io/library/alpine:3.19 is alpine:3.19.
func displayName(n string) string {
	n = strings.TrimPrefix(n, "index.docker.io/")
	return strings.TrimPrefix(n, "library/")
}

// ago is a docker-style age: "3 minutes ago", "1 hour ago".
func ago(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	d := time.Since(t)
	n, unit := int(d.Hours()/24/30), "month"
	switch {
	case d < time.Minute:
		n, unit = int(d.Seconds()), "second"
	case d < time.Hour:
		n, unit = int(d.Minutes()), "minute"
	case d < 48*time.Hour:
		n, unit = int(d.Hours()), "hour"
	case d < 60*24*time.Hour:
		n, unit = int(d.Hours()/24), "day"
	}
	if n != 1 {
		unit += "s"
	}
	return fmt.Sprintf("%d %s ago", n, unit)
}

// humanBytes prints a size with a decimal unit, as docker does.
func humanBytes(n int64) string {
	f := float64(n)
	for _, u := range []string{"B", "kB", "MB", "GB"} {
		if f < 1000 {
			return fmt.Sprintf("%.3g%s", f, u)
		}
		f /= 1000
	}
	return fmt.Sprintf("%.3gTB", f)
}
