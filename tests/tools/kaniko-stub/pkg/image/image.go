// Package image holds the hook upstream's extender overrides.
package image

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/osscontainertools/kaniko/pkg/config"
)

// RetrieveRemoteImage is replaced by the extender before use.
var RetrieveRemoteImage func(image string, opts config.RegistryOptions, customPlatform string) (v1.Image, error)
