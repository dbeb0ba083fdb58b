// The OCI runtime-tools validation suite (make test-oci), in a module of its
// own so the main go.mod stays clean and `go vet ./...` / `go test ./...`
// from the repository root never descend here. runtime-tools v0.9.0 has no
// go.mod: the versions below are those of its era (its Godeps), pinned; a
// newer runtime-spec or selinux does not compile with it.
module github.com/corral-dev/corral/tests/oci

go 1.21

require (
	github.com/opencontainers/runtime-tools v0.9.0
	github.com/urfave/cli v1.19.1
)

require (
	github.com/blang/semver v3.5.1+incompatible // indirect
	github.com/hashicorp/errwrap v1.0.0 // indirect
	github.com/hashicorp/go-multierror v1.0.0 // indirect
	github.com/konsorten/go-windows-terminal-sequences v1.0.1 // indirect
	github.com/mndrix/tap-go v0.0.0-20171203230836-629fa407e90b // indirect
	github.com/mrunalp/fileutils v0.0.0-20171103030105-7d4729fb3618 // indirect
	github.com/opencontainers/runtime-spec v1.0.2 // indirect
	github.com/opencontainers/selinux v1.2.2 // indirect
	github.com/satori/go.uuid v1.2.0 // indirect
	github.com/sirupsen/logrus v1.4.2 // indirect
	github.com/syndtr/gocapability v0.0.0-20180916011248-d98352740cb2 // indirect
	github.com/xeipuuv/gojsonpointer v0.0.0-20190905194746-02993c407bfb // indirect
	github.com/xeipuuv/gojsonreference v0.0.0-20180127040603-bd5ef7bd5415 // indirect
	github.com/xeipuuv/gojsonschema v1.1.0 // indirect
	golang.org/x/sys v0.0.0-20190422165155-953cdadca894 // indirect
	gopkg.in/check.v1 v1.0.0-20201130134442-10cb98267c6c // indirect
	gopkg.in/yaml.v2 v2.4.0 // indirect
)
