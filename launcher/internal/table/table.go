// Package table reads the launch table, the file the exporter renders from metadata.toml
// (<layers>/config/launch.table). Its format is fixed and versioned: spec/launcher.md.
package table

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
)

// Format is the only table format this launcher reads.
const Format = 2

// maxSize caps what is read: a table is a few kilobytes.
const maxSize = 16 << 20

// Table is the whole launch table.
type Table struct {
	Format     int         `json:"format"`
	Buildpacks []Buildpack `json:"buildpacks"`
	Processes  []Process   `json:"processes"`
}

// Buildpack is one buildpack of the group, in group order.
type Buildpack struct {
	ID  string `json:"id"`
	Dir string `json:"dir"` // its layers directory name under <layers>
}

// Process is one process type with its argument rules already resolved at export.
type Process struct {
	Type    string   `json:"type"`
	Command []string `json:"command"` // always passed: the program, then fixed entries
	Args    []string `json:"args"`    // passed when the user gives none
	// UserArgs says what user arguments do: "replace" Args, "append" to Args, or "refuse".
	UserArgs string `json:"user-args"`
	// Refusal is the error when UserArgs is "refuse" and the user gave arguments.
	Refusal string `json:"refusal"`
	Direct  bool   `json:"direct"`
	// UnknownBuildpack is the error when a shell process with arguments comes from a
	// buildpack not in the group; empty otherwise.
	UnknownBuildpack string   `json:"unknown-buildpack"`
	WorkingDir       string   `json:"working-dir"`
	ExecEnv          []string `json:"exec-env"`
}

// Read parses the table at path and refuses any format but Format.
func Read(path string) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data := make([]byte, 0, 4096)
	buf := make([]byte, 32<<10)
	for {
		n, rerr := f.Read(buf)
		data = append(data, buf[:n]...)
		if len(data) > maxSize {
			return nil, fmt.Errorf("%s: larger than %d bytes", path, maxSize)
		}
		if rerr != nil {
			break
		}
	}
	return Parse(data, path)
}

// Parse parses table bytes; where names the source in errors.
func Parse(data []byte, where string) (*Table, error) {
	var head struct {
		Format *int `json:"format"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("%s: not a launch table: %v", where, err)
	}
	if head.Format == nil {
		return nil, fmt.Errorf("%s: no format version", where)
	}
	if *head.Format != Format {
		return nil, fmt.Errorf("%s: format %d is not supported (this launcher reads format %d)", where, *head.Format, Format)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var t Table
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("%s: %v", where, err)
	}
	for i, p := range t.Processes {
		if len(p.Command) == 0 {
			return nil, fmt.Errorf("%s: process %d (%q) has no command", where, i, p.Type)
		}
		switch p.UserArgs {
		case "replace", "append", "refuse":
		default:
			return nil, fmt.Errorf("%s: process %q: unknown user-args rule %q", where, p.Type, p.UserArgs)
		}
	}
	for _, bp := range t.Buildpacks {
		if bp.Dir == "" || bp.Dir == "." || bp.Dir == ".." || bytes.ContainsRune([]byte(bp.Dir), '/') {
			return nil, fmt.Errorf("%s: buildpack %q: invalid directory %q", where, bp.ID, bp.Dir)
		}
	}
	return &t, nil
}

// Find returns the first process of type ptype for which eligible is true.
func (t *Table) Find(ptype string, eligible func(Process) bool) (Process, bool) {
	for _, p := range t.Processes {
		if p.Type == ptype && (eligible == nil || eligible(p)) {
			return p, true
		}
	}
	return Process{}, false
}
