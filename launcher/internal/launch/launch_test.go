package launch

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"lifecycle.local/launcher/internal/env"
	"lifecycle.local/launcher/internal/table"
)

// golden is tests/launch/golden: tables rendered by the Python side from metadata.toml, and the
// process each entry point and argument list must resolve to.
var golden = filepath.Join("..", "..", "..", "tests", "launch", "golden")

type goldenCase struct {
	Self             string   `json:"self"`
	Args             []string `json:"args"`
	ExecEnv          string   `json:"exec-env"`
	Argv             []string `json:"argv"`
	Direct           bool     `json:"direct"`
	WorkingDir       string   `json:"working-dir"`
	UnknownBuildpack string   `json:"unknown-buildpack"`
	Error            string   `json:"error"`
}

func TestGoldenProcessSelection(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(golden, "*", "launch.table"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden tables under %s (%v)", golden, err)
	}
	for _, path := range dirs {
		tbl, err := table.Read(path)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(filepath.Join(filepath.Dir(path), "cases.json"))
		if err != nil {
			t.Fatal(err)
		}
		var cases []goldenCase
		if err := json.Unmarshal(raw, &cases); err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			execEnv := c.ExecEnv
			if execEnv == "" {
				execEnv = "production"
			}
			l := &Launcher{Table: tbl, ExecEnv: execEnv, FilterEx: true}
			got, err := l.ProcessFor(c.Self, c.Args)
			if c.Error != "" {
				if err == nil || err.Error() != c.Error {
					t.Errorf("%s %q: error %v, want %q", c.Self, c.Args, err, c.Error)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s %q: %v", c.Self, c.Args, err)
				continue
			}
			if !reflect.DeepEqual(got.Argv, c.Argv) || got.Direct != c.Direct || got.WorkingDir != c.WorkingDir ||
				got.UnknownBuildpack != c.UnknownBuildpack {
				t.Errorf("%s %q: got %+v, want %+v", c.Self, c.Args, got, c)
			}
		}
	}
}

func TestShellScriptQuotesProfilesAndTokens(t *testing.T) {
	dir := t.TempDir()
	var gotArgv []string
	l := &Launcher{Table: &table.Table{}, App: dir, Env: env.NewLaunch(nil), Exec: func(_ string, argv []string, _ []string) error {
		gotArgv = argv
		return nil
	}}
	Shells = []string{"/bin/sh"}
	if err := l.launchShell("/cnb/process/x", Process{Argv: []string{"echo", "it's"}, WorkingDir: "/a'b"}); err != nil {
		t.Fatal(err)
	}
	want := []string{"sh", "-c", "cd '/a'\\''b'\nexec '/bin/sh' -c 'exec \"$(eval echo \\\"$0\\\")\" \"$(eval echo \\\"${1}\\\")\"' \"$@\"",
		"/cnb/process/x", "echo", "it's"}
	if !reflect.DeepEqual(gotArgv, want) {
		t.Errorf("argv %q, want %q", gotArgv, want)
	}
}
