package execd

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseTOML(t *testing.T) {
	doc := strings.Join([]string{
		"# comment", "", `A = "x\ty\u00e9\"\\"`, `'B C' = 'lit\n'`, `"D.E" = ""`,
		`F = """`, `one \`, `   two"""`, `G = '''`, `raw\n'''  # c`, "H=\"crlf\"\r", "",
	}, "\n")
	got, err := ParseTOML(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := []Var{{"A", "x\tyé\"\\"}, {"B C", `lit\n`}, {"D.E", ""}, {"F", "one two"}, {"G", `raw\n`}, {"H", "crlf"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestParseTOMLErrors(t *testing.T) {
	for doc, msg := range map[string]string{
		"A = 1":                "line 1: value must be a string",
		"[env]\nA = \"x\"":     "line 1: tables are not allowed",
		"a.b = \"x\"":          "line 1: dotted key",
		"A = \"x\"\nA = \"y\"": "line 2: key \"A\" defined twice",
		"A = \"x":              "line 1: unterminated string",
		"A = \"x\" y":          "line 1: unexpected 'y' after value",
		"A = \"\\q\"":          "line 1: invalid escape",
		"A =":                  "line 1: missing value",
	} {
		_, err := ParseTOML(doc)
		if err == nil || !strings.HasPrefix(err.Error(), msg) {
			t.Errorf("%q: error %v, want prefix %q", doc, err, msg)
		}
	}
}
