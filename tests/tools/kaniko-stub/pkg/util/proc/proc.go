// Package proc reports the container runtime; the stand-in never finds one, so the extender refuses early.
package proc

// ContainerRuntime names a runtime.
type ContainerRuntime string

// RuntimeNotFound means no container runtime was detected.
const RuntimeNotFound ContainerRuntime = "not-found"

// GetContainerRuntime always answers RuntimeNotFound.
func GetContainerRuntime(_, _ int) ContainerRuntime {
	return RuntimeNotFound
}
