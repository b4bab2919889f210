package dashboard

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// problemFiles are internal/meter's files whose problems a history import
// can meet, and so a page can show.
var problemFiles = []string{"history.go", "datadis.go", "greenbutton.go", "csv.go", "decode.go", "problem.go"}

// meterFormats returns the English formats of the problems made in
// internal/meter's problemFiles: the literal format of each call of
// problemf, lineErr, reject and say.
func meterFormats(t *testing.T) []string {
	t.Helper()
	formatArg := map[string]int{"problemf": 0, "lineErr": 1, "reject": 1, "say": 1}
	fs := token.NewFileSet()
	var formats []string
	for _, name := range problemFiles {
		f, err := parser.ParseFile(fs, filepath.Join("..", "internal", "meter", name), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			id, ok := call.Fun.(*ast.Ident)
			if !ok {
				return true
			}
			i, known := formatArg[id.Name]
			if !known || len(call.Args) <= i {
				return true
			}
			lit, ok := call.Args[i].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true // a function passing its own format on
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(formats, s) {
				formats = append(formats, s)
			}
			return true
		})
	}
	return formats
}

var verbs = regexp.MustCompile(`%[-+# 0-9.]*[a-zA-Z%]`)

// TestProblemsSaid: every problem a history import can meet has Spanish
// words, with the same verbs in the same order as the English ones, and
// no Spanish entry is of a problem that no longer exists.
func TestProblemsSaid(t *testing.T) {
	formats := meterFormats(t)
	if len(formats) < 80 {
		t.Fatalf("found %d formats in internal/meter; the scan misses calls", len(formats))
	}
	words := regexp.MustCompile(`[a-zA-Z]{2,}`)
	for _, f := range formats {
		es, ok := problemsES[f]
		if !ok {
			if words.MatchString(verbs.ReplaceAllString(f, "")) {
				t.Errorf("no Spanish for %q", f)
			}
			continue
		}
		if got, want := verbs.FindAllString(es, -1), verbs.FindAllString(f, -1); !slices.Equal(got, want) {
			t.Errorf("Spanish of %q has verbs %v, want %v", f, got, want)
		}
	}
	for f := range problemsES {
		if !slices.Contains(formats, f) {
			t.Errorf("Spanish for %q, which internal/meter no longer says", f)
		}
	}
}

// TestModbusProblemsSaid: every problem internal/modbus says of a device
// has Spanish words, with the same verbs in the same order, and no
// Spanish entry is of a problem that no longer exists.
func TestModbusProblemsSaid(t *testing.T) {
	fs := token.NewFileSet()
	var formats []string
	files, err := filepath.Glob(filepath.Join("..", "internal", "modbus", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fs, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if id, ok := call.Fun.(*ast.Ident); !ok || id.Name != "problemf" || len(call.Args) == 0 {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(formats, s) {
				formats = append(formats, s)
			}
			return true
		})
	}
	if len(formats) < 30 {
		t.Fatalf("found %d formats in internal/modbus; the scan misses calls", len(formats))
	}
	for _, f := range formats {
		es, ok := modbusES[f]
		if !ok {
			t.Errorf("no Spanish for %q", f)
			continue
		}
		if got, want := verbs.FindAllString(es, -1), verbs.FindAllString(f, -1); !slices.Equal(got, want) {
			t.Errorf("Spanish of %q has verbs %v, want %v", f, got, want)
		}
	}
	for f := range modbusES {
		if !slices.Contains(formats, f) {
			t.Errorf("Spanish for %q, which internal/modbus no longer says", f)
		}
	}
}
