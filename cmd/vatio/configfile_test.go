package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/vatio-energy/vatio/internal/docgen"
)

// checkConfigFile reports what is wrong with the file at path as the
// config.yaml Vatio ships: Vatio must start with it (it parses, and passes
// every check of start-up), and it must document every key of the
// configuration reference. A key is documented when it is there, under a
// comment of its own or in a group of keys on consecutive lines under one
// (min_power_w and max_power_w); a field of a list's items (inputs[].topic)
// when the list's comment names it. Its values are the user's: they need
// not be the defaults.
func checkConfigFile(path string) error {
	if _, _, err := loadConfig([]string{"-config", path}, func(string) string { return "" }, io.Discard); err != nil {
		return err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return fmt.Errorf("%s: empty", path)
	}
	var errs []error
	for _, key := range docgen.ConfigKeys() {
		list, field, inItem := strings.Cut(key, "[].")
		k, documented := lookup(doc.Content[0], list)
		switch {
		case k == nil:
			errs = append(errs, fmt.Errorf("%s: key %s is not listed", path, list))
		case !inItem && !documented:
			errs = append(errs, fmt.Errorf("%s:%d: key %s has no comment", path, k.Line, list))
		case inItem:
			for _, part := range strings.Split(strings.ReplaceAll(field, "[].", "."), ".") {
				if !regexp.MustCompile(`\b` + regexp.QuoteMeta(part) + `\b`).MatchString(comment(k)) {
					errs = append(errs, fmt.Errorf("%s:%d: the comment of %s does not name %s (of %s)", path, k.Line, list, part, key))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// lookup finds the key node of a dotted key in a YAML mapping, and whether
// it is documented: by a comment of its own, or as one of a group of keys on
// consecutive lines whose first has one.
func lookup(m *yaml.Node, dotted string) (key *yaml.Node, documented bool) {
	parts := strings.Split(dotted, ".")
	for depth, part := range parts {
		if m.Kind != yaml.MappingNode {
			return nil, false
		}
		i := slices.IndexFunc(m.Content, func(n *yaml.Node) bool { return n.Value == part })
		if i < 0 || i%2 != 0 {
			return nil, false
		}
		if depth == len(parts)-1 {
			documented = comment(m.Content[i]) != ""
			for j := i; !documented && j >= 2; j -= 2 {
				prevKey, prevValue := m.Content[j-2], m.Content[j-1]
				if lastLine(prevValue) != m.Content[j].Line-1 && prevKey.Line != m.Content[j].Line-1 {
					break
				}
				documented = comment(prevKey) != ""
			}
			return m.Content[i], documented
		}
		m = m.Content[i+1]
	}
	return nil, false
}

// comment is the text of a key's comments: above it and beside its value.
func comment(key *yaml.Node) string {
	return key.HeadComment + key.LineComment
}

// lastLine is the last line a node spans.
func lastLine(n *yaml.Node) int {
	last := n.Line
	for _, c := range n.Content {
		last = max(last, lastLine(c))
	}
	return last
}

// TestShippedConfigDocumentsEveryKey holds the repository's config.yaml to
// what a user needs from it: every key with a comment, and Vatio starts
// with it. Its values may be anyone's: a user who edits them, as the guide
// says, still passes.
func TestShippedConfigDocumentsEveryKey(t *testing.T) {
	if err := checkConfigFile(repoPath("config.yaml")); err != nil {
		t.Errorf("the shipped config.yaml:\n%v", err)
	}
}

// TestEditedConfigStillPasses writes the user guide's examples into a copy
// of the shipped config.yaml, in place of its values, as a user following
// the guide does, and runs the same checks on it. A copy missing a key or a
// comment fails them.
func TestEditedConfigStillPasses(t *testing.T) {
	shipped, err := os.ReadFile(repoPath("config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	edited := string(shipped)
	changed := 0
	for _, fragment := range yamlBlocks(t, repoPath("docs", "user-guide.md")) {
		var n int
		edited, n = writeValues(t, edited, fragment)
		changed += n
	}
	if changed < 15 {
		t.Fatalf("the guide's examples changed %d values of config.yaml; want its tariff, rules, inputs, shedding, alerts and addresses", changed)
	}
	if edited == string(shipped) {
		t.Fatal("the edits left config.yaml as shipped")
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkConfigFile(path); err != nil {
		t.Errorf("config.yaml edited as the guide says:\n%v\n%s", err, edited)
	}
	cfg, _, err := loadConfig([]string{"-config", path}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Dashboard.TimeZone != "Europe/Madrid" || cfg.Tariff.PriceKWh != 0.08 || len(cfg.Tariff.Periods) != 5 || len(cfg.Alerts.Rules) != 1 || len(cfg.Shedding.Loads) != 2 {
		t.Errorf("the edited config.yaml read as timezone %q, price_kwh %v, %d periods, %d rules, %d loads; want the guide's Europe/Madrid, 0.08, 5, 1, 2",
			cfg.Dashboard.TimeZone, cfg.Tariff.PriceKWh, len(cfg.Tariff.Periods), len(cfg.Alerts.Rules), len(cfg.Shedding.Loads))
	}

	// The checks can fail: a key taken out, a comment taken away, an item
	// field the list's comment does not name, a value Vatio refuses.
	for _, tt := range []struct{ name, old, new, want string }{
		{"a key left out", "  hsts: false\n", "", "key tls.hsts is not listed"},
		{"a comment taken away", "  # debug, info, warn or error.\n", "", "key log.level has no comment"},
		{"an item field not named", "#   pf_field: data.pf           # json, optional: the power factor\n", "", "does not name pf_field"},
		{"a value refused", "  level: info\n", "  level: loud\n", "log.level"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(string(shipped), tt.old) {
				t.Fatalf("config.yaml has no %q to change", tt.old)
			}
			path := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(path, []byte(strings.Replace(string(shipped), tt.old, tt.new, 1)), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := checkConfigFile(path); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("checkConfigFile() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// yamlBlocks returns the ```yaml blocks of a Markdown file.
func yamlBlocks(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []string
	var cur *strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```yaml":
			cur = &strings.Builder{}
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks
}

// writeValues writes the values of a config fragment into config.yaml's
// text in place of the values there, line for line, as a user edits the
// file: each key of the fragment whose value is not a mapping replaces the
// lines of that key and its value (one line in the shipped file; more once
// an earlier example set a list) with the fragment's lines of it, indented
// to the key. It returns the new
// text and how many values it replaced; a key config.yaml lacks fails t.
func writeValues(t *testing.T, text, fragment string) (string, int) {
	t.Helper()
	var file, frag yaml.Node
	if err := yaml.Unmarshal([]byte(text), &file); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(fragment), &frag); err != nil {
		t.Fatalf("%v:\n%s", err, fragment)
	}
	lines := strings.SplitAfter(text, "\n")
	fragLines := strings.SplitAfter(fragment, "\n")
	type edit struct {
		line, last int // 1-based, in text: the key's and its value's last
		with       []string
	}
	var edits []edit
	var walk func(f, m *yaml.Node, prefix string)
	walk = func(f, m *yaml.Node, prefix string) {
		for i := 0; i+1 < len(f.Content); i += 2 {
			fk, fv := f.Content[i], f.Content[i+1]
			j := slices.IndexFunc(m.Content, func(n *yaml.Node) bool { return n.Value == fk.Value })
			if j < 0 || j%2 != 0 {
				t.Fatalf("the guide sets %s%s, which config.yaml does not list", prefix, fk.Value)
			}
			mk, mv := m.Content[j], m.Content[j+1]
			if fv.Kind == yaml.MappingNode && mv.Kind == yaml.MappingNode {
				walk(fv, mv, prefix+fk.Value+".")
				continue
			}
			// The fragment's lines of this key, moved to the file's indent.
			shift := mk.Column - fk.Column
			var with []string
			for _, l := range fragLines[fk.Line-1 : lastLine(fv)] {
				if shift >= 0 {
					l = strings.Repeat(" ", shift) + l
				} else {
					l = l[min(-shift, len(l)-len(strings.TrimLeft(l, " "))):]
				}
				with = append(with, l)
			}
			edits = append(edits, edit{mk.Line, lastLine(mv), with})
		}
	}
	walk(frag.Content[0], file.Content[0], "")
	slices.SortFunc(edits, func(a, b edit) int { return b.line - a.line })
	for _, e := range edits {
		lines = slices.Replace(lines, e.line-1, e.last, e.with...)
	}
	var out bytes.Buffer
	for _, l := range lines {
		out.WriteString(l)
	}
	return out.String(), len(edits)
}
