// The launcher of app images: /cnb/lifecycle/launcher, and /cnb/process/<type> links to it.
// Semantics and the launch table format: spec/launcher.md.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"lifecycle.local/launcher/internal/env"
	"lifecycle.local/launcher/internal/execd"
	"lifecycle.local/launcher/internal/launch"
	"lifecycle.local/launcher/internal/table"
)

const (
	codePlatformAPI = 11 // upstream's code for a missing or unsupported Platform API
	codeLaunch      = 82
)

func fail(code int, msg string) {
	fmt.Fprintf(os.Stderr, "ERROR: %s\n", msg)
	os.Exit(code)
}

func getenv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// platformMinor parses "0.<minor>" for the supported range, 0.12 to 0.15.
func platformMinor(v string) (int, bool) {
	major, minor, ok := strings.Cut(v, ".")
	m, err := strconv.Atoi(minor)
	if !ok || major != "0" || err != nil || m < 12 || m > 15 {
		return 0, false
	}
	return m, true
}

func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

func main() {
	api := os.Getenv("CNB_PLATFORM_API")
	if api == "" {
		fail(codePlatformAPI, "failed to get platform API version; please set 'CNB_PLATFORM_API' to specify the desired platform API version")
	}
	minor, ok := platformMinor(api)
	if !ok {
		fail(codePlatformAPI, fmt.Sprintf("platform API version '%s' is incompatible with the lifecycle", api))
	}
	if pt := os.Getenv("CNB_PROCESS_TYPE"); pt != "" {
		fmt.Printf("Warning: CNB_PROCESS_TYPE is not supported in Platform API %s\n", api)
		fmt.Printf("Warning: Run with ENTRYPOINT '%s' to invoke the '%s' process type\n", pt, pt)
	}
	layers := abs(getenv("CNB_LAYERS_DIR", "/layers"))
	tablePath := filepath.Join(layers, "config", "launch.table")
	t, err := table.Read(tablePath)
	if err != nil {
		fail(codeLaunch, "failed to read launch table: "+err.Error())
	}
	l := &launch.Launcher{
		Table:    t,
		Layers:   layers,
		App:      abs(getenv("CNB_APP_DIR", "/workspace")),
		ExecEnv:  getenv("CNB_EXEC_ENV", "production"),
		FilterEx: minor >= 15,
		Env:      env.NewLaunch(os.Environ()),
		Exec:     syscall.Exec,
		ExecD:    execd.Run,
		Setenv:   os.Setenv,
		Chdir:    os.Chdir,
	}
	err = l.Launch(os.Args[0], os.Args[1:])
	fail(codeLaunch, "failed to launch: "+err.Error())
}
