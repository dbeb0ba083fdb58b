// Command viewreader reads corralfs views in a loop and reports, as JSON,
// every failed, slow or wrong read: the load of the survive-kill tests
// (tests/corralfs_survive_test.go). Static (CGO_ENABLED=0): it runs in
// any container. See package reader for its flags.
package main

import (
	"os"

	"github.com/corral-dev/corral/tests/viewreader/reader"
)

func main() { os.Exit(reader.Main(os.Args[1:])) }
