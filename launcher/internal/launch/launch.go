// Package launch selects the process to run and runs it: the environment from the buildpacks'
// layers, exec.d, then a direct exec or, for shell processes, a shell that sources profiles.
// Side effects are fields so tests can watch them without running processes.
package launch

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"lifecycle.local/launcher/internal/env"
	"lifecycle.local/launcher/internal/execd"
	"lifecycle.local/launcher/internal/table"
)

// Shells are tried in order for shell processes; the first that exists runs them.
var Shells = []string{"/bin/bash", "/bin/sh"}

// Launcher holds what one launch needs.
type Launcher struct {
	Table    *table.Table
	Layers   string // absolute
	App      string // absolute
	ExecEnv  string // CNB_EXEC_ENV, "production" by default
	FilterEx bool   // Platform API >= 0.15: processes are filtered by exec-env
	Env      *env.Env
	// Exec replaces the launcher with argv0 (syscall.Exec in production).
	Exec func(argv0 string, argv []string, envv []string) error
	// ExecD runs one exec.d executable with the environment.
	ExecD func(path string, envv []string) ([]execd.Var, error)
	// Setenv sets the launcher's own variable (PATH, for the command lookup).
	Setenv func(name, value string) error
	// Chdir changes the working directory.
	Chdir func(dir string) error
}

// Process is a process ready to launch.
type Process struct {
	Type             string
	Argv             []string // argv[0] is the command
	Direct           bool
	UnknownBuildpack string
	WorkingDir       string
}

// Launch selects the process for self (argv[0]) and args and launches it; it returns only on error.
func (l *Launcher) Launch(self string, args []string) error {
	proc, err := l.ProcessFor(self, args)
	if err != nil {
		return fmt.Errorf("determine start command: %w", err)
	}
	if err := l.Chdir(l.App); err != nil {
		return fmt.Errorf("change to app directory: %w", err)
	}
	if err := l.doEnv(proc.Type); err != nil {
		return fmt.Errorf("modify env: %w", err)
	}
	if err := l.doExecD(proc.Type); err != nil {
		return fmt.Errorf("exec.d: %w", err)
	}
	if proc.WorkingDir == "" {
		proc.WorkingDir = l.App
	}
	if proc.Direct {
		return l.launchDirect(proc)
	}
	return l.launchShell(self, proc)
}

// ProcessType is the process type named by the entry point (/cnb/process/<type>), or "".
func (l *Launcher) ProcessType(self string) string {
	name := filepath.Base(self)
	if _, ok := l.Table.Find(name, nil); ok {
		return name
	}
	return ""
}

func (l *Launcher) eligible(p table.Process) bool {
	if !l.FilterEx || len(p.ExecEnv) == 0 {
		return true
	}
	for _, e := range p.ExecEnv {
		if e == "*" || e == l.ExecEnv {
			return true
		}
	}
	return false
}

// ProcessFor resolves the process and its final argv.
func (l *Launcher) ProcessFor(self string, args []string) (Process, error) {
	ptype := l.ProcessType(self)
	if ptype == "" {
		if len(args) == 0 {
			return Process{}, errors.New("when there is no default process a command is required")
		}
		if len(args) > 1 && args[0] == "--" {
			return Process{Argv: args[1:], Direct: true}, nil
		}
		return Process{Argv: args}, nil
	}
	tp, ok := l.Table.Find(ptype, l.eligible)
	if !ok {
		return Process{}, fmt.Errorf("process type %s was not found", ptype)
	}
	argv := append([]string{}, tp.Command...)
	switch {
	case len(args) == 0:
		argv = append(argv, tp.Args...)
	case tp.UserArgs == "replace":
		argv = append(argv, args...)
	case tp.UserArgs == "append":
		argv = append(append(argv, tp.Args...), args...)
	default:
		return Process{}, errors.New(tp.Refusal)
	}
	return Process{Type: tp.Type, Argv: argv, Direct: tp.Direct, UnknownBuildpack: tp.UnknownBuildpack,
		WorkingDir: tp.WorkingDir}, nil
}

// eachBuildpack calls fn with each buildpack's layers directory that exists, in group order.
func (l *Launcher) eachBuildpack(fn func(bpDir string) error) error {
	for _, bp := range l.Table.Buildpacks {
		dir := filepath.Join(l.Layers, bp.Dir)
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			continue
		} else if err != nil {
			return fmt.Errorf("find buildpack directory: %w", err)
		}
		if err := fn(dir); err != nil {
			return err
		}
	}
	return nil
}

// eachIn calls fn for each entry of dir (name order) that is a directory (dirs) or not (files).
// A missing dir has no entries. Symlinks count as files, as os.DirEntry reports them.
func eachIn(dir string, dirs bool, fn func(path string) error) error {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		return fmt.Errorf("failed to list files in dir '%s': %w", dir, err)
	}
	for _, e := range entries {
		if e.IsDir() != dirs {
			continue
		}
		if err := fn(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// doEnv applies, buildpack by buildpack: every layer's bin/ and lib/, then every layer's env/,
// env.launch/ and env.launch/<type>/.
func (l *Launcher) doEnv(ptype string) error {
	return l.eachBuildpack(func(bpDir string) error {
		if err := eachIn(bpDir, true, l.Env.AddRootDir); err != nil {
			return fmt.Errorf("add layer root: %w", err)
		}
		err := eachIn(bpDir, true, func(layer string) error {
			dirs := []string{filepath.Join(layer, "env"), filepath.Join(layer, "env.launch")}
			if ptype != "" {
				dirs = append(dirs, filepath.Join(layer, "env.launch", ptype))
			}
			for _, d := range dirs {
				if err := l.Env.AddEnvDir(d); err != nil {
					return fmt.Errorf("apply env files from dir '%s': %w", d, err)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("add layer env: %w", err)
		}
		return nil
	})
}

// doExecD runs every layer's exec.d/* then exec.d/<type>/*, buildpack by buildpack.
func (l *Launcher) doExecD(ptype string) error {
	run := func(path string) error {
		vars, err := l.ExecD(path, l.Env.List())
		if err != nil {
			return err
		}
		for _, v := range vars {
			l.Env.Set(v.Name, v.Value)
		}
		return nil
	}
	return l.eachBuildpack(func(bpDir string) error {
		return eachIn(bpDir, true, func(layer string) error {
			if err := eachIn(filepath.Join(layer, "exec.d"), false, run); err != nil {
				return err
			}
			if ptype == "" {
				return nil
			}
			return eachIn(filepath.Join(layer, "exec.d", ptype), false, run)
		})
	})
}

func (l *Launcher) launchDirect(proc Process) error {
	if err := l.Setenv("PATH", l.Env.Get("PATH")); err != nil {
		return fmt.Errorf("set path: %w", err)
	}
	binary, err := exec.LookPath(proc.Argv[0])
	if err != nil {
		return fmt.Errorf("path lookup: %w", err)
	}
	if err := l.Chdir(proc.WorkingDir); err != nil {
		return fmt.Errorf("change directory: %w", err)
	}
	if err := l.Exec(binary, proc.Argv, l.Env.List()); err != nil {
		return fmt.Errorf("direct exec: %w", err)
	}
	return nil
}

// profiles lists profile.d scripts (and profile.d/<type>) of every layer, then the app's .profile.
func (l *Launcher) profiles(ptype string) ([]string, error) {
	var out []string
	add := func(path string) error { out = append(out, path); return nil }
	err := l.eachBuildpack(func(bpDir string) error {
		return eachIn(bpDir, true, func(layer string) error {
			if err := eachIn(filepath.Join(layer, "profile.d"), false, add); err != nil {
				return err
			}
			if ptype == "" {
				return nil
			}
			return eachIn(filepath.Join(layer, "profile.d", ptype), false, add)
		})
	})
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(filepath.Join(l.App, ".profile"))
	if err == nil && !fi.IsDir() {
		// Absolute: "." would search PATH for a bare name.
		out = append(out, filepath.Join(l.App, ".profile"))
	} else if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("failed to determine if app profile script exists at path '%s': %w",
			filepath.Join(l.App, ".profile"), err)
	}
	return out, nil
}

// quote makes s one single-quoted POSIX shell word.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// launchShell runs a shell that sources the profiles, changes to the working directory and runs
// a nested shell: one word is a script (sh -c WORD); more words are each evaluated like a
// double-quoted shell word, then run.
func (l *Launcher) launchShell(self string, proc Process) error {
	profs, err := l.profiles(proc.Type)
	if err != nil {
		return fmt.Errorf("find profiles: %w", err)
	}
	script := len(proc.Argv) == 1
	if !script && proc.UnknownBuildpack != "" {
		return errors.New(proc.UnknownBuildpack)
	}
	shell := ""
	for _, sh := range Shells {
		if fi, err := os.Stat(sh); err == nil && !fi.IsDir() {
			shell = sh
			break
		}
	}
	if shell == "" {
		return fmt.Errorf("shell exec: this process needs a shell and the image has none of %s (run a command "+
			"without one as: /cnb/lifecycle/launcher -- <command> [args...])", strings.Join(Shells, ", "))
	}
	var b strings.Builder
	for _, p := range profs {
		b.WriteString(". " + quote(p) + "\n")
	}
	b.WriteString("cd " + quote(proc.WorkingDir) + "\n")
	if script {
		b.WriteString("exec " + quote(shell) + ` -c "$1"`)
	} else {
		inner := `exec "$(eval echo \"$0\")"`
		for i := 1; i < len(proc.Argv); i++ {
			inner += ` "$(eval echo \"${` + strconv.Itoa(i) + `}\")"`
		}
		b.WriteString("exec " + quote(shell) + " -c " + quote(inner) + ` "$@"`)
	}
	argv := append([]string{filepath.Base(shell), "-c", b.String(), self}, proc.Argv...)
	if err := l.Exec(shell, argv, l.Env.List()); err != nil {
		return fmt.Errorf("shell exec: %w", err)
	}
	return nil
}
