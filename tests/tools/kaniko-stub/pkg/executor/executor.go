// Package executor would apply a Dockerfile; the stand-in refuses.
package executor

import (
	"errors"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/osscontainertools/kaniko/pkg/config"
)

// DoBuild always fails: image extensions are not part of this test build of upstream's lifecycle.
func DoBuild(_ *config.KanikoOptions) (v1.Image, error) {
	return nil, errors.New("image extensions are not available in this build (kaniko stand-in)")
}
