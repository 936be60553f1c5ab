// Package execd runs exec.d executables: each gets the launch environment and fd 3, a pipe on
// which it may write TOML (NAME = "value" lines); those variables are set before the next runs.
package execd

import (
	"fmt"
	"io"
	"os"
	"os/exec"
)

// maxOutput caps what one executable may write on fd 3.
const maxOutput = 1 << 20

// Var is one NAME = value pair from an executable's output, in output order.
type Var struct{ Name, Value string }

// Run executes path with env, stdout and stderr inherited, and returns the variables it wrote.
func Run(path string, env []string) ([]Var, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("failed to create pipe: %w", err)
	}
	defer pr.Close()
	cmd := exec.Command(path)
	cmd.Args = []string{path}
	cmd.Env = env
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = []*os.File{pw}
	if err := cmd.Start(); err != nil {
		pw.Close()
		return nil, fmt.Errorf("failed to execute exec.d file at path '%s': %w", path, err)
	}
	pw.Close()
	out, readErr := io.ReadAll(io.LimitReader(pr, maxOutput+1))
	pr.Close() // an executable writing past the cap gets EPIPE instead of blocking forever
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("failed to execute exec.d file at path '%s': %w", path, err)
	}
	if readErr != nil {
		return nil, fmt.Errorf("failed to read output from exec.d file at path '%s': %w", path, readErr)
	}
	if len(out) > maxOutput {
		return nil, fmt.Errorf("failed to read output from exec.d file at path '%s': more than %d bytes", path, maxOutput)
	}
	vars, err := ParseTOML(string(out))
	if err != nil {
		return nil, fmt.Errorf("failed to decode output from exec.d file at path '%s': %w", path, err)
	}
	return vars, nil
}
