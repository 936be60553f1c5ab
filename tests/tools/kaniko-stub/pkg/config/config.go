// Package config holds the option types upstream's extender fills in.
package config

import "time"

// KanikoDir is where kaniko would keep its state.
var KanikoDir string

// RegistryOptions configures registry access (unused here).
type RegistryOptions struct{}

// CacheOptions configures kaniko's layer cache.
type CacheOptions struct {
	CacheTTL time.Duration
}

// KanikoOptions are the build options upstream's extender passes.
type KanikoOptions struct {
	BuildArgs         []string
	Cache             bool
	CacheOptions      CacheOptions
	CacheRunLayers    bool
	CacheCopyLayers   bool
	CacheRepo         string
	Cleanup           bool
	CustomPlatform    string
	DockerfilePath    string
	IgnorePaths       []string
	IgnoreVarRun      bool
	InitialFSUnpacked bool
	NoPush            bool
	Reproducible      bool
	SnapshotMode      string
	SrcContext        string
}
