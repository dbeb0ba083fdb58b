//go:build tools

// Package oci only pins the validation suite's packages in go.mod; run.sh
// builds them (make test-oci).
package oci

import (
	_ "github.com/opencontainers/runtime-tools/validation/util"
	_ "github.com/urfave/cli" // cmd/runtimetest's
)
