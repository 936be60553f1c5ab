package env

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestNewLaunchStripsLauncherSettings(t *testing.T) {
	e := NewLaunch([]string{"CNB_LAYERS_DIR=/l", "A=1", "PATH=/cnb/process:/bin::/cnb/lifecycle", "CNB_PLATFORM_API=0.15", "A=2"})
	if got, want := e.List(), []string{"A=2", "PATH=/bin:"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestAddEnvDir(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"O": "o", "P.prepend": "p", "P.delim": ":", "AP.append": "a", "D.default": "d", "X.weird": "x", "=Q": "q",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "web"), 0o755); err != nil {
		t.Fatal(err)
	}
	e := NewLaunch([]string{"P=old", "AP=old", "D=set"})
	if err := e.AddEnvDir(dir); err != nil {
		t.Fatal(err)
	}
	if got, want := e.List(), []string{"P=p:old", "AP=olda", "D=set", "O=o"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestGoldenEnvDirs applies tests/launch/golden/*/env with the values of case.json; the build-time
// implementation (lifecycle/phases/_buildenv.py) is checked against the same cases by pytest.
func TestGoldenEnvDirs(t *testing.T) {
	cases, err := filepath.Glob(filepath.Join("..", "..", "..", "tests", "launch", "golden", "*", "case.json"))
	if err != nil || len(cases) == 0 {
		t.Fatalf("no golden env cases (%v)", err)
	}
	for _, path := range cases {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Before map[string]string `json:"before"`
			After  map[string]string `json:"after"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatal(err)
		}
		var environ []string
		for k, v := range c.Before {
			environ = append(environ, k+"="+v)
		}
		e := NewLaunch(environ)
		if err := e.AddEnvDir(filepath.Join(filepath.Dir(path), "env")); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, kv := range e.List() {
			k, v, _ := strings.Cut(kv, "=")
			got[k] = v
		}
		if !reflect.DeepEqual(got, c.After) {
			t.Errorf("%s: got %q, want %q", path, got, c.After)
		}
	}
}
