// Package env is the app's environment as the launcher builds it: the container's environment
// without the launcher's own variables, then each buildpack's layer dirs and env files.
package env

import (
	"os"
	"path/filepath"
	"strings"
)

// Excluded are the launcher's own settings; they never reach the app.
var Excluded = []string{"CNB_LAYERS_DIR", "CNB_APP_DIR", "CNB_PROCESS_TYPE", "CNB_PLATFORM_API", "CNB_DEPRECATION_MODE"}

// StrippedPath are PATH entries removed so the app never re-enters the launcher.
var StrippedPath = []string{"/cnb/process", "/cnb/lifecycle"}

// rootDirs maps a layer subdirectory to the variables it is prepended to.
var rootDirs = []struct{ dir, name string }{{"bin", "PATH"}, {"lib", "LD_LIBRARY_PATH"}}

// Env is an ordered set of variables: the container's order, new names appended.
type Env struct {
	names []string
	vals  map[string]string
}

// NewLaunch returns the launch environment built from environ (KEY=VALUE entries).
func NewLaunch(environ []string) *Env {
	e := &Env{vals: map[string]string{}}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || contains(Excluded, k) {
			continue
		}
		e.Set(k, v)
	}
	if p, ok := e.vals["PATH"]; ok {
		var kept []string
		for _, part := range strings.Split(p, ":") {
			if !contains(StrippedPath, part) {
				kept = append(kept, part)
			}
		}
		e.vals["PATH"] = strings.Join(kept, ":")
	}
	return e
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Get returns the value of name ("" when unset).
func (e *Env) Get(name string) string { return e.vals[name] }

// Set sets name to value.
func (e *Env) Set(name, value string) {
	if _, ok := e.vals[name]; !ok {
		e.names = append(e.names, name)
	}
	e.vals[name] = value
}

// List returns KEY=VALUE entries in a stable order.
func (e *Env) List() []string {
	out := make([]string, 0, len(e.names))
	for _, k := range e.names {
		out = append(out, k+"="+e.vals[k])
	}
	return out
}

// AddRootDir prepends <dir>/bin to PATH and <dir>/lib to LD_LIBRARY_PATH where they exist.
func (e *Env) AddRootDir(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for _, rd := range rootDirs {
		child := filepath.Join(abs, rd.dir)
		if _, err := os.Stat(child); os.IsNotExist(err) {
			continue
		} else if err != nil {
			return err
		}
		e.Set(rd.name, joinNonEmpty(child, ":", e.Get(rd.name)))
	}
	return nil
}

// joinNonEmpty is a+sep+b, or a when b is empty.
func joinNonEmpty(a, sep, b string) string {
	if b == "" {
		return a
	}
	return a + sep + b
}

// AddEnvDir applies the env files of dir in name order: NAME (override), NAME.override,
// NAME.default, NAME.prepend, NAME.append (the last two joined by NAME.delim when the old
// value is not empty). Other suffixes, directories and a missing dir are ignored.
func (e *Env) AddEnvDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		return err
	}
	for _, ent := range entries {
		path := filepath.Join(dir, ent.Name())
		if ent.IsDir() {
			continue
		}
		if ent.Type()&os.ModeSymlink != 0 {
			fi, err := os.Stat(path)
			if err != nil {
				return err
			}
			if fi.IsDir() {
				continue
			}
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		value := string(raw)
		name, action, suffixed := strings.Cut(ent.Name(), ".")
		if !suffixed {
			action = "override"
		}
		if name == "" || strings.Contains(name, "=") {
			continue // not a variable name an environment entry can carry
		}
		switch action {
		case "override":
			e.Set(name, value)
		case "default":
			if e.Get(name) == "" {
				e.Set(name, value)
			}
		case "prepend":
			e.Set(name, joinNonEmpty(value, delim(dir, name), e.Get(name)))
		case "append":
			if old := e.Get(name); old != "" {
				value = old + delim(dir, name) + value
			}
			e.Set(name, value)
		}
	}
	return nil
}

// delim is the content of NAME.delim in dir, or "" when there is none.
func delim(dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, name+".delim"))
	if err != nil {
		return ""
	}
	return string(b)
}
