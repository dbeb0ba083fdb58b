package image

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/corral-dev/corral/tests/testutil"
)

// corruptBlobs serves reg, flipping one byte of every layer blob it
// returns: what a bad mirror or a broken proxy does.
type corruptBlobs struct {
	reg     http.Handler
	layer   string      // the digest to corrupt
	corrupt atomic.Bool // only while set
}

func (c *corruptBlobs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := strings.LastIndex(r.URL.Path, "/blobs/")
	if r.Method != http.MethodGet || i < 0 || !c.corrupt.Load() || r.URL.Path[i+len("/blobs/"):] != c.layer {
		c.reg.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	c.reg.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	if len(body) > 40 {
		body[len(body)-30] ^= 0xff // inside the gzip stream, past its header
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	io.Copy(w, bytes.NewReader(body))
}

// TestPullRefusesCorruptBlob: a registry blob that does not match its
// digest fails the pull and leaves nothing in the store; the same image
// from an honest registry pulls.
func TestPullRefusesCorruptBlob(t *testing.T) {
	testutil.RequireRoot(t)
	img := imageOf(t, layerTar(t, entry{name: "bin/", typ: tar.TypeDir}, entry{name: "bin/data", body: strings.Repeat("corral ", 2000), typ: tar.TypeReg}))
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	wrap := &corruptBlobs{reg: registry.New(registry.Logger(log.New(io.Discard, "", 0))), layer: d.String()}
	srv := httptest.NewServer(wrap)
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/corrupt/img:1"
	testutil.PushImage(t, ref, img)
	wrap.corrupt.Store(true)

	s := &Store{Root: t.TempDir()}
	if _, err := s.Pull(context.Background(), ref); err == nil || !strings.Contains(err.Error(), "does not match its digest") {
		t.Fatalf("a pull of a corrupt layer blob: %v; want a digest mismatch", err)
	}
	storeIsEmpty(t, s)
	wrap.corrupt.Store(false)
	if _, err := s.Pull(context.Background(), ref); err != nil {
		t.Fatalf("the honest pull: %v", err)
	}
}
