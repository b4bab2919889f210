// Package docgen writes the reference pages of docs/ from what they
// describe, so they cannot drift from it: the configuration reference from
// the config.Config struct (its keys, types, defaults and doc comments) and
// the API reference from the OpenAPI description. The docs test in the
// repository's root compares docs/ with what these return; `make docs`
// writes them.
package docgen

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/vatio-energy/vatio/internal/config"
)

// docs are the doc comments of a package's struct types and their fields.
type docs struct {
	types  map[string]string            // type name -> doc
	fields map[string]map[string]string // type name -> field name -> doc
}

// readDocs parses the Go files of dir (tests left out) for the doc
// comments of its struct types and fields.
func readDocs(dir string) (docs, error) {
	d := docs{types: map[string]string{}, fields: map[string]map[string]string{}}
	fset := token.NewFileSet()
	matches, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return d, err
	}
	for _, path := range matches {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return d, err
		}
		for _, decl := range f.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != token.TYPE {
				continue
			}
			for _, spec := range gen.Specs {
				ts := spec.(*ast.TypeSpec)
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				doc := ts.Doc
				if doc == nil && len(gen.Specs) == 1 {
					doc = gen.Doc
				}
				d.types[ts.Name.Name] = doc.Text()
				fields := map[string]string{}
				for _, fl := range st.Fields.List {
					text := fl.Doc.Text()
					if text == "" {
						text = fl.Comment.Text()
					}
					for _, n := range fl.Names {
						fields[n.Name] = text
					}
				}
				d.fields[ts.Name.Name] = fields
			}
		}
	}
	return d, nil
}

// key is one row of the reference.
type key struct {
	path, typ, def, doc string
}

// ConfigReference returns docs/config.md: every key of config.Config with
// its type, default and description, read from the package's source in
// dir (the config directory). It fails on a key with no doc comment: an
// undocumented key is a defect, not a blank cell.
func ConfigReference(dir string) (string, error) {
	d, err := readDocs(dir)
	if err != nil {
		return "", err
	}
	var missing []string
	var b strings.Builder
	b.WriteString(`# Configuration reference

<!-- Generated from the config.Config struct by internal/docgen (make docs); edit the struct's comments, not this file. -->

Vatio reads its settings in rising precedence from the defaults below,
` + "`config.yaml`" + ` (the file named by ` + "`-config`" + ` or ` + "`VATIO_CONFIG`" + `, else
` + "`./config.yaml`" + ` when there is one), the environment variables and the
flags ` + "`-mqtt-addr`, `-http-addr` and `-data-dir`" + `. A key left out keeps its
default; an unknown key, a value of the wrong type or one out of range
stops Vatio at start with an error naming the key and its line. The
repository's ` + "`config.yaml`" + ` lists every key with its default and a comment.

Types: *duration* is a number and a unit (` + "`90s`, `15m`, `720h`" + `); *list*
is a YAML list; a *list of objects* has one row per field below it, as
` + "`key[].field`" + `.

## Environment

| variable | sets |
|---|---|
| ` + "`VATIO_CONFIG`" + ` | the configuration file to read |
`)
	for _, e := range config.Environment {
		fmt.Fprintf(&b, "| `%s` | `%s` |\n", e.Name, e.Key)
	}
	def := reflect.ValueOf(config.Default())
	t := def.Type()
	var top []key
	type part struct {
		name, doc string
		keys      []key
	}
	var sections []part
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if tag == "" {
			continue
		}
		if f.Type.Kind() == reflect.Struct && f.Type != durationType {
			doc := section(d.types[f.Type.Name()], f.Type.Name())
			if doc == "" {
				doc = describe(d.fields[t.Name()][f.Name], t)
			}
			if doc == "" {
				missing = append(missing, tag)
			}
			sections = append(sections, part{tag, doc, walk(d, f.Type, def.Field(i), tag+".", &missing)})
			continue
		}
		top = append(top, leaf(d, t, f, def.Field(i), "", &missing)...)
	}
	b.WriteString("\n## Top level\n\n")
	table(&b, top)
	for _, s := range sections {
		fmt.Fprintf(&b, "\n## `%s`\n\n", s.name)
		if s.doc != "" {
			b.WriteString(wrap(text(s.doc)) + "\n\n")
		}
		table(&b, s.keys)
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("docgen: keys with no doc comment in %s: %s", dir, strings.Join(missing, ", "))
	}
	return b.String(), nil
}

// ConfigKeys returns, in the order of docs/config.md, the key of every row
// of the configuration reference that holds a value: the top-level keys,
// each section's keys (mqtt.addr), the lists of objects (inputs) and the
// fields of their items (inputs[].name, shedding.loads[].off.topic). The
// headings of groups (alerts.webhook) are left out: their keys are listed.
func ConfigKeys() []string {
	var missing []string
	def := reflect.ValueOf(config.Default())
	t := def.Type()
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Tag.Get("yaml") == "" {
			continue
		}
		for _, k := range leaf(docs{}, t, f, def.Field(i), "", &missing) {
			if k.typ != "object" {
				out = append(out, k.path)
			}
		}
	}
	return out
}

var durationType = reflect.TypeOf(time.Duration(0))

// walk returns the rows of struct type t, whose value is v.
func walk(d docs, t reflect.Type, v reflect.Value, prefix string, missing *[]string) []key {
	var out []key
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Tag.Get("yaml") == "" {
			continue
		}
		var fv reflect.Value
		if v.IsValid() {
			fv = v.Field(i)
		}
		out = append(out, leaf(d, t, f, fv, prefix, missing)...)
	}
	return out
}

// leaf returns the rows of field f of t: one, or those of a nested struct
// or a list of objects.
func leaf(d docs, t reflect.Type, f reflect.StructField, v reflect.Value, prefix string, missing *[]string) []key {
	path := prefix + f.Tag.Get("yaml")
	doc := describe(d.fields[t.Name()][f.Name], t)
	switch {
	case f.Type.Kind() == reflect.Struct && f.Type != durationType:
		rows := walk(d, f.Type, v, path+".", missing)
		if doc == "" {
			doc = section(d.types[f.Type.Name()], f.Type.Name())
		}
		if doc != "" { // a heading row for the group
			rows = append([]key{{path: path, typ: "object", def: "", doc: doc}}, rows...)
		}
		return rows
	case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
		et := f.Type.Elem()
		if doc == "" {
			doc = section(d.types[et.Name()], et.Name())
		}
		if doc == "" {
			*missing = append(*missing, path)
		}
		rows := []key{{path: path, typ: "list of objects", def: value(v), doc: doc}}
		return append(rows, walk(d, et, reflect.Value{}, path+"[].", missing)...)
	}
	if doc == "" {
		*missing = append(*missing, path)
	}
	def := ""
	if v.IsValid() {
		def = value(v)
	}
	return []key{{path: path, typ: typeName(f.Type), def: def, doc: doc}}
}

func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t.Kind() == reflect.Pointer:
		return typeName(t.Elem()) + " (optional)"
	case t.Kind() == reflect.Slice:
		return "list of " + typeName(t.Elem()) + "s"
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() == reflect.Bool:
		return "bool"
	case t.Kind() == reflect.Float64 || t.Kind() == reflect.Float32:
		return "number"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "integer"
	}
	return t.String()
}

// value formats a default as it is written in config.yaml.
func value(v reflect.Value) string {
	switch {
	case !v.IsValid():
		return ""
	case v.Type() == durationType:
		return duration(time.Duration(v.Int()))
	case v.Kind() == reflect.Pointer:
		if v.IsNil() {
			return "none"
		}
		return value(v.Elem())
	case v.Kind() == reflect.Slice:
		if v.Len() == 0 {
			return "[]"
		}
		var items []string
		for i := 0; i < v.Len(); i++ {
			if v.Index(i).Kind() == reflect.Struct {
				return fmt.Sprintf("%d items", v.Len())
			}
			items = append(items, value(v.Index(i)))
		}
		return "[" + strings.Join(items, ", ") + "]"
	case v.Kind() == reflect.String:
		if v.String() == "" {
			return `""`
		}
		return v.String()
	}
	if v.Kind() == reflect.Float64 || v.Kind() == reflect.Float32 {
		return strconv.FormatFloat(v.Float(), 'f', -1, 64)
	}
	return fmt.Sprint(v.Interface())
}

// duration writes d as config.yaml does: 720h, 5m, 90s.
func duration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// describe turns a field's Go doc comment into text for the reader: the
// Go names of the fields of t become their keys ("DataDir holds" ->
// "`data_dir` holds").
func describe(doc string, t reflect.Type) string {
	doc = strings.Join(strings.Fields(doc), " ")
	if t == nil || t.Kind() != reflect.Struct {
		return doc
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if tag := f.Tag.Get("yaml"); tag != "" {
			doc = goName(f.Name).ReplaceAllString(doc, "${1}`"+tag+"`${2}")
		}
	}
	return doc
}

// goName matches a Go name as a whole word.
func goName(name string) *regexp.Regexp {
	return regexp.MustCompile(`(^|[^\w.])` + regexp.QuoteMeta(name) + `($|[^\w])`)
}

// section turns a struct type's doc comment into a paragraph: the type's
// name at its start goes ("Log configures" -> "Configures").
func section(doc, typeName string) string {
	doc = strings.Join(strings.Fields(doc), " ")
	if rest, ok := strings.CutPrefix(doc, typeName+" "); ok {
		r, n := utf8.DecodeRuneInString(rest)
		doc = string(unicode.ToUpper(r)) + rest[n:]
	}
	return doc
}

func table(b *strings.Builder, keys []key) {
	b.WriteString("| key | type | default | description |\n|---|---|---|---|\n")
	for _, k := range keys {
		def := k.def
		if def != "" {
			def = "`" + strings.ReplaceAll(def, "|", `\|`) + "`"
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", k.path, k.typ, def, cell(k.doc))
	}
}

// cell makes text safe in a Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(text(s), "|", `\|`)
}

// text escapes what Markdown would take for HTML (<prefix>).
func text(s string) string {
	return strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace(s)
}

// wrap folds a paragraph at 78 columns.
func wrap(s string) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(s) {
		if i > 0 && n+1+len(w) > 78 {
			b.WriteByte('\n')
			n = 0
		} else if i > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}

// WriteFile writes s to path when it differs, and reports whether it did.
func WriteFile(path, s string) (bool, error) {
	old, err := os.ReadFile(path)
	if err == nil && string(old) == s {
		return false, nil
	}
	return true, os.WriteFile(path, []byte(s), 0o644)
}
