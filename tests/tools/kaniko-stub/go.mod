// A stand-in for github.com/osscontainertools/kaniko, which the Go module proxy here does not serve.
// Upstream's lifecycle imports it only for the extender (image extensions, which this project does not
// support); the stand-in has the few names that code uses and fails if the extender ever runs.
// tests/tools/install.sh points upstream's build at it with a `replace`; see spec/upstream-differences.md.
module github.com/osscontainertools/kaniko

go 1.26

require github.com/google/go-containerregistry v0.21.9
