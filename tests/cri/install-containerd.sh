#!/bin/sh
# Installs containerd 2 (containerd, containerd-shim-runc-v2, ctr) for the
# CRI test into $CORRAL_TEST_CACHE/containerd-VERSION (default
# /var/cache/corral-test), built from source with `go install` through the
# Go module proxy: Debian ships containerd 1.6, which has no usable NRI.
# A no-op when the three binaries are there. Built into a temporary
# directory and renamed, so an interrupted install is never taken for a
# finished one. The first install takes about 7 minutes on a 2-core machine
# (downloading and compiling containerd's dependencies), some 40 s with the
# Go module and build caches already warm.
set -eu
version=${CONTAINERD_VERSION:-v2.4.2}
cache=${CORRAL_TEST_CACHE:-/var/cache/corral-test}
dir=$cache/containerd-$version
if [ -x "$dir/containerd" ] && [ -x "$dir/containerd-shim-runc-v2" ] && [ -x "$dir/ctr" ]; then
	exit 0
fi
GO=${GO:-go}
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.containerd-$version.XXXXXX")
chmod 0755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
echo "test-deps: installing containerd $version into $dir (go install; the first time takes minutes)"
start=$(date +%s)
mod=github.com/containerd/containerd/v2
GOBIN=$tmp CGO_ENABLED=0 "$GO" install "$mod/cmd/containerd@$version" "$mod/cmd/containerd-shim-runc-v2@$version" "$mod/cmd/ctr@$version"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "test-deps: containerd $version installed in $(( $(date +%s) - start )) s"
