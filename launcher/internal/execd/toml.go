package execd

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ParseTOML reads the TOML an exec.d executable writes: top-level keys whose values are strings
// (basic, literal, and their multi-line forms), comments and blank lines. Anything else (tables,
// dotted keys, other value types, duplicate keys) is an error, as it is for upstream's decoder
// into a map of strings.
func ParseTOML(doc string) ([]Var, error) {
	if !utf8.ValidString(doc) {
		return nil, fmt.Errorf("output is not valid UTF-8")
	}
	p := &parser{s: doc, line: 1}
	var vars []Var
	seen := map[string]bool{}
	for {
		p.skipBlankLines()
		if p.eof() {
			return vars, nil
		}
		if p.peek() == '[' {
			return nil, p.errorf("tables are not allowed, only NAME = \"value\" pairs")
		}
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.peek() == '.' {
			return nil, p.errorf("dotted key %q: only NAME = \"value\" pairs are allowed", key)
		}
		if p.peek() != '=' {
			return nil, p.errorf("expected '=' after key %q", key)
		}
		p.i++
		p.skipSpace()
		val, err := p.stringValue()
		if err != nil {
			return nil, err
		}
		if err := p.endOfLine(); err != nil {
			return nil, err
		}
		if seen[key] {
			return nil, p.errorf("key %q defined twice", key)
		}
		seen[key] = true
		vars = append(vars, Var{key, val})
	}
}

type parser struct {
	s    string
	i    int
	line int
}

func (p *parser) errorf(format string, a ...any) error {
	return fmt.Errorf("line %d: %s", p.line, fmt.Sprintf(format, a...))
}

func (p *parser) eof() bool { return p.i >= len(p.s) }
func (p *parser) peek() byte {
	if p.eof() {
		return 0
	}
	return p.s[p.i]
}

func (p *parser) skipSpace() {
	for !p.eof() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *parser) skipComment() {
	if p.peek() == '#' {
		for !p.eof() && p.s[p.i] != '\n' {
			p.i++
		}
	}
}

// newline consumes "\n" or "\r\n"; false when neither is next.
func (p *parser) newline() bool {
	if strings.HasPrefix(p.s[p.i:], "\r\n") {
		p.i += 2
	} else if p.peek() == '\n' {
		p.i++
	} else {
		return false
	}
	p.line++
	return true
}

func (p *parser) skipBlankLines() {
	for {
		p.skipSpace()
		p.skipComment()
		if !p.newline() {
			return
		}
	}
}

func (p *parser) endOfLine() error {
	p.skipSpace()
	p.skipComment()
	if p.eof() || p.newline() {
		return nil
	}
	return p.errorf("unexpected %q after value", p.peek())
}

func isBare(c byte) bool {
	return c == '_' || c == '-' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
}

func (p *parser) key() (string, error) {
	switch p.peek() {
	case '"':
		if strings.HasPrefix(p.s[p.i:], `"""`) {
			return "", p.errorf("a key cannot be a multi-line string")
		}
		return p.basic()
	case '\'':
		if strings.HasPrefix(p.s[p.i:], `'''`) {
			return "", p.errorf("a key cannot be a multi-line string")
		}
		return p.literal()
	}
	start := p.i
	for !p.eof() && isBare(p.s[p.i]) {
		p.i++
	}
	if p.i == start {
		return "", p.errorf("expected a key, found %q", p.peek())
	}
	return p.s[start:p.i], nil
}

func (p *parser) stringValue() (string, error) {
	rest := p.s[p.i:]
	switch {
	case strings.HasPrefix(rest, `"""`):
		return p.multiBasic()
	case strings.HasPrefix(rest, `'''`):
		return p.multiLiteral()
	case strings.HasPrefix(rest, `"`):
		return p.basic()
	case strings.HasPrefix(rest, `'`):
		return p.literal()
	case rest == "" || rest[0] == '\n' || rest[0] == '\r' || rest[0] == '#':
		return "", p.errorf("missing value")
	}
	return "", p.errorf("value must be a string")
}

// control reports characters TOML forbids unescaped in strings (tab is allowed).
func control(c byte) bool { return (c < 0x20 && c != '\t') || c == 0x7f }

func (p *parser) basic() (string, error) {
	p.i++ // opening quote
	var b strings.Builder
	for {
		if p.eof() || p.s[p.i] == '\n' {
			return "", p.errorf("unterminated string")
		}
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return b.String(), nil
		case c == '\\':
			if err := p.escape(&b); err != nil {
				return "", err
			}
		case control(c):
			return "", p.errorf("control character %q in string", c)
		default:
			b.WriteByte(c)
			p.i++
		}
	}
}

func (p *parser) escape(b *strings.Builder) error {
	p.i++ // backslash
	if p.eof() {
		return p.errorf("unterminated escape")
	}
	c := p.s[p.i]
	p.i++
	simple := map[byte]byte{'b': '\b', 't': '\t', 'n': '\n', 'f': '\f', 'r': '\r', '"': '"', '\\': '\\', 'e': 0x1b}
	if r, ok := simple[c]; ok {
		b.WriteByte(r)
		return nil
	}
	n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[c]
	if n == 0 {
		return p.errorf("invalid escape \\%c", c)
	}
	if p.i+n > len(p.s) {
		return p.errorf("short \\%c escape", c)
	}
	v, err := strconv.ParseUint(p.s[p.i:p.i+n], 16, 32)
	if err != nil || !utf8.ValidRune(rune(v)) {
		return p.errorf("invalid \\%c escape %q", c, p.s[p.i:min(p.i+n, len(p.s))])
	}
	p.i += n
	b.WriteRune(rune(v))
	return nil
}

func (p *parser) literal() (string, error) {
	p.i++
	start := p.i
	for {
		if p.eof() || p.s[p.i] == '\n' {
			return "", p.errorf("unterminated string")
		}
		c := p.s[p.i]
		if c == '\'' {
			v := p.s[start:p.i]
			p.i++
			return v, nil
		}
		if control(c) {
			return "", p.errorf("control character %q in string", c)
		}
		p.i++
	}
}

// trimFirstNewline drops a newline right after a multi-line string's opening delimiter.
func (p *parser) trimFirstNewline() { p.newline() }

func (p *parser) multiBasic() (string, error) {
	p.i += 3
	p.trimFirstNewline()
	var b strings.Builder
	for {
		if p.eof() {
			return "", p.errorf("unterminated multi-line string")
		}
		if strings.HasPrefix(p.s[p.i:], `"""`) {
			// Up to two quotes may directly precede the closing delimiter.
			extra := 0
			for extra < 2 && strings.HasPrefix(p.s[p.i+3+extra:], `"`) {
				extra++
			}
			b.WriteString(strings.Repeat(`"`, extra))
			p.i += 3 + extra
			return b.String(), nil
		}
		c := p.s[p.i]
		switch {
		case c == '\\':
			// A line-ending backslash trims all whitespace and newlines that follow.
			j := p.i + 1
			for j < len(p.s) && (p.s[j] == ' ' || p.s[j] == '\t') {
				j++
			}
			if j < len(p.s) && (p.s[j] == '\n' || strings.HasPrefix(p.s[j:], "\r\n")) {
				p.i = j
				for !p.eof() {
					if p.newline() {
						continue
					}
					if p.s[p.i] == ' ' || p.s[p.i] == '\t' {
						p.i++
						continue
					}
					break
				}
				continue
			}
			if err := p.escape(&b); err != nil {
				return "", err
			}
		case p.newline():
			b.WriteByte('\n')
		case control(c):
			return "", p.errorf("control character %q in string", c)
		default:
			b.WriteByte(c)
			p.i++
		}
	}
}

func (p *parser) multiLiteral() (string, error) {
	p.i += 3
	p.trimFirstNewline()
	var b strings.Builder
	for {
		if p.eof() {
			return "", p.errorf("unterminated multi-line string")
		}
		if strings.HasPrefix(p.s[p.i:], `'''`) {
			extra := 0
			for extra < 2 && strings.HasPrefix(p.s[p.i+3+extra:], `'`) {
				extra++
			}
			b.WriteString(strings.Repeat(`'`, extra))
			p.i += 3 + extra
			return b.String(), nil
		}
		c := p.s[p.i]
		switch {
		case p.newline():
			b.WriteByte('\n')
		case control(c):
			return "", p.errorf("control character %q in string", c)
		default:
			b.WriteByte(c)
			p.i++
		}
	}
}
