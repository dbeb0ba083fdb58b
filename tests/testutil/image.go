package testutil

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TarDir returns dir as an uncompressed tar stream (an image layer):
// files, directories and symlinks, owned by root, paths relative to dir.
func TarDir(t testing.TB, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		t.Fatalf("tar %s: %v", dir, err)
	}
	return buf.Bytes()
}

// LayerFromTar makes a (gzip-compressed) image layer of a tar stream.
func LayerFromTar(t testing.TB, data []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// BusyboxImage is a one-layer image of BusyboxRootfs (static busybox, an
// applet symlink each, /etc/passwd with root and nobody) plus the empty
// directories extraDirs, with cfg as its config (Entrypoint, Cmd, Env,
// WorkingDir, User).
func BusyboxImage(t testing.TB, cfg v1.Config, extraDirs ...string) v1.Image {
	t.Helper()
	root := BusyboxRootfs(t)
	for _, d := range extraDirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return ImageFromRootfs(t, root, cfg)
}

// ImageFromRootfs is a one-layer image of the directory root, with cfg as
// its config.
func ImageFromRootfs(t testing.TB, root string, cfg v1.Config) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, LayerFromTar(t, TarDir(t, root)))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", goArch()
	cf.Config = cfg
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// StartRegistry serves an in-memory registry (go-containerregistry's) on
// a loopback port for the test's lifetime and returns its host:port;
// corral and go-containerregistry speak plain http to loopback.
func StartRegistry(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(discardLogger())))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// PushImage uploads img to ref (e.g. HOST:PORT/busybox:1).
func PushImage(t testing.TB, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// DockerArchive writes img as `docker save` does (manifest.json, config,
// layer tars), tagged tag, to a new file and returns its path.
func DockerArchive(t testing.TB, tag string, img v1.Image) string {
	t.Helper()
	tg, err := name.NewTag(tag)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "image.tar")
	if err := tarball.WriteToFile(path, tg, img); err != nil {
		t.Fatal(err)
	}
	return path
}

func goArch() string { return runtime.GOARCH }

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }
