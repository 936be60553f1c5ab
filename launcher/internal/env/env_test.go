package env

import (
	"os"
	"path/filepath"
	"reflect"
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
