package docgen

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// spec is the part of an OpenAPI 3.1 description the reference shows.
type spec struct {
	Info struct {
		Title       string `json:"title"`
		Summary     string `json:"summary"`
		Description string `json:"description"`
	} `json:"info"`
	Tags []struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	} `json:"tags"`
	Paths      orderedPaths `json:"paths"`
	Components struct {
		Schemas   map[string]schema `json:"schemas"`
		Responses map[string]struct {
			Description string `json:"description"`
		} `json:"responses"`
		Parameters map[string]param `json:"parameters"`
	} `json:"components"`
}

type operation struct {
	Method      string
	Path        string
	Summary     string   `json:"summary"`
	Description string   `json:"description"`
	Tags        []string `json:"tags"`
	Parameters  []param  `json:"parameters"`
	RequestBody *struct {
		Required bool `json:"required"`
		Content  map[string]struct {
			Schema schema `json:"schema"`
		} `json:"content"`
	} `json:"requestBody"`
	Responses map[string]struct {
		Ref         string `json:"$ref"`
		Description string `json:"description"`
	} `json:"responses"`
	Security *[]any `json:"security"`
	// Role is the least role that may make the operation (x-role).
	Role        string `json:"x-role"`
	OperationID string `json:"operationId"`
	CodeSamples []struct {
		Lang   string `json:"lang"`
		Label  string `json:"label"`
		Source string `json:"source"`
	} `json:"x-codeSamples"`
}

type param struct {
	Ref         string `json:"$ref"`
	Name        string `json:"name"`
	In          string `json:"in"`
	Required    bool   `json:"required"`
	Description string `json:"description"`
	Schema      schema `json:"schema"`
}

type schema struct {
	Ref         string         `json:"$ref"`
	Type        any            `json:"type"` // a string or a list of them
	Format      string         `json:"format"`
	Enum        []any          `json:"enum"`
	Items       *schema        `json:"items"`
	Properties  orderedSchemas `json:"properties"`
	Required    []string       `json:"required"`
	Description string         `json:"description"`
	Default     any            `json:"default"`
	Minimum     *float64       `json:"minimum"`
	Maximum     *float64       `json:"maximum"`
}

// orderedPaths keeps the operations in the order of the file, which is
// the order a reader meets them in.
type orderedPaths []operation

func (o *orderedPaths) UnmarshalJSON(b []byte) error {
	keys, vals, err := objectInOrder(b)
	if err != nil {
		return err
	}
	for i, path := range keys {
		mkeys, mvals, err := objectInOrder(vals[i])
		if err != nil {
			return err
		}
		for j, m := range mkeys {
			if !slices.Contains([]string{"get", "put", "post", "patch", "delete"}, m) {
				continue
			}
			var op operation
			if err := json.Unmarshal(mvals[j], &op); err != nil {
				return fmt.Errorf("%s %s: %w", m, path, err)
			}
			op.Method, op.Path = strings.ToUpper(m), path
			*o = append(*o, op)
		}
	}
	return nil
}

// orderedSchemas keeps an object's properties in the file's order.
type orderedSchemas []namedSchema

type namedSchema struct {
	Name string
	schema
}

func (o *orderedSchemas) UnmarshalJSON(b []byte) error {
	keys, vals, err := objectInOrder(b)
	if err != nil {
		return err
	}
	for i, k := range keys {
		var s schema
		if err := json.Unmarshal(vals[i], &s); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		*o = append(*o, namedSchema{k, s})
	}
	return nil
}

// objectInOrder returns a JSON object's keys and raw values in order.
func objectInOrder(b []byte) ([]string, []json.RawMessage, error) {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, nil, fmt.Errorf("not an object")
	}
	var keys []string
	var vals []json.RawMessage
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, err
		}
		keys, vals = append(keys, t.(string)), append(vals, v)
	}
	return keys, vals, nil
}

// APIReference returns docs/api.md from the OpenAPI description: every
// operation, by tag, with its parameters, body, answers and the curl
// example of its x-codeSamples. It fails on an operation with no tag or
// no example.
func APIReference(openapi []byte) (string, error) {
	var s spec
	if err := json.Unmarshal(openapi, &s); err != nil {
		return "", fmt.Errorf("docgen: openapi.json: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `# API reference

<!-- Generated from api/openapi.json by internal/docgen (make docs); edit that file, not this one. -->

%s

%s

The machine-readable description is `+"`GET /api/v1/openapi.json`"+` (OpenAPI
3.1); `+"`/api/v1`"+` is the versioned API, and `+"`GET /api/energy`"+` and `+"`POST /api/alert`"+`
are the original design's, kept as they were. Errors are JSON: `+"`{\"error\": \"...\", \"detail\": \"...\"}`"+`.

## Trying the examples

Each operation has a curl example that runs as written once three
variables are set: the address of Vatio, an API token (see
[tokens](operator-guide.md#users-tokens-and-device-credentials)) and, for
the login examples, the admin's password.

`+"```sh stopped"+`
export VATIO=http://localhost:5000
export TOKEN=$(vatio token -name docs -role admin)
export PASSWORD='a long passphrase'
`+"```"+`

The examples read a meter called kitchen; these readings make one (with
Mosquitto's command-line client, `+"`mosquitto-clients`"+`):

`+"```sh"+`
for w in 1200 1850 900; do
  mosquitto_pub -h localhost -q 1 -t energy/consumption/kitchen -m "{\"power_w\": $w}"
done
`+"```"+`

`+"`make test`"+` runs every example of this page, in order, against a new
Vatio (see [the docs check](architecture.md#how-the-docs-are-checked)).

## Contents

`, s.Info.Summary, wrap(s.Info.Description))
	byTag := map[string][]operation{}
	for _, op := range s.Paths {
		if len(op.Tags) == 0 {
			return "", fmt.Errorf("docgen: %s %s has no tag", op.Method, op.Path)
		}
		if len(op.CodeSamples) == 0 {
			return "", fmt.Errorf("docgen: %s %s has no x-codeSamples example", op.Method, op.Path)
		}
		byTag[op.Tags[0]] = append(byTag[op.Tags[0]], op)
	}
	slugs := map[string]int{}
	anchor := func(heading string) string {
		a := Slug(heading)
		n := slugs[a]
		slugs[a]++
		if n > 0 {
			a = fmt.Sprintf("%s-%d", a, n)
		}
		return a
	}
	// The anchors of the headings below, in their order, for the contents.
	for _, t := range s.Tags {
		fmt.Fprintf(&b, "- [%s](#%s)\n", title(t.Name), anchor(title(t.Name)))
		for _, op := range byTag[t.Name] {
			h := "`" + op.Method + " " + op.Path + "`"
			fmt.Fprintf(&b, "  - [%s](#%s): %s\n", h, anchor(h), firstSentence(op.Summary))
		}
	}
	for _, t := range s.Tags {
		fmt.Fprintf(&b, "\n## %s\n\n%s\n", title(t.Name), wrap(t.Description))
		for _, op := range byTag[t.Name] {
			if err := s.operation(&b, op); err != nil {
				return "", err
			}
		}
		delete(byTag, t.Name)
	}
	for name := range byTag {
		return "", fmt.Errorf("docgen: tag %q is not in the tags list", name)
	}
	return b.String(), nil
}

func (s *spec) operation(b *strings.Builder, op operation) error {
	fmt.Fprintf(b, "\n### `%s %s`\n\n%s\n", op.Method, op.Path, wrap(text(op.Summary)))
	if op.Description != "" {
		fmt.Fprintf(b, "\n%s\n", wrap(text(op.Description)))
	}
	if op.OperationID != "" {
		fmt.Fprintf(b, "\noperationId: `%s`\n", op.OperationID)
	}
	if op.Security != nil && len(*op.Security) == 0 {
		b.WriteString("\nOpen: no token or session needed.\n")
	} else if op.Role != "" {
		fmt.Fprintf(b, "\nNeeds the %s role (or a higher one).\n", op.Role)
	}
	if len(op.Parameters) > 0 {
		b.WriteString("\n| parameter | in | type | description |\n|---|---|---|---|\n")
		for _, p := range op.Parameters {
			if p.Ref != "" {
				p = s.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
			}
			name := "`" + p.Name + "`"
			if p.Required {
				name += " (required)"
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s |\n", name, p.In, s.typeOf(p.Schema), cell(p.Description+s.constraints(p.Schema)))
		}
	}
	if rb := op.RequestBody; rb != nil {
		types := make([]string, 0, len(rb.Content))
		for ct := range rb.Content {
			types = append(types, ct)
		}
		slices.Sort(types)
		fmt.Fprintf(b, "\nBody (%s):", "`"+strings.Join(types, "` or `")+"`")
		body := s.resolve(rb.Content[types[0]].Schema)
		if len(body.Properties) > 0 {
			b.WriteString("\n\n| field | type | description |\n|---|---|---|\n")
			for _, p := range body.Properties {
				name := "`" + p.Name + "`"
				if slices.Contains(body.Required, p.Name) {
					name += " (required)"
				}
				fmt.Fprintf(b, "| %s | %s | %s |\n", name, s.typeOf(p.schema), cell(s.resolve(p.schema).Description+s.constraints(p.schema)))
			}
		} else {
			fmt.Fprintf(b, " %s.\n", s.typeOf(rb.Content[types[0]].Schema))
		}
	}
	codes := make([]string, 0, len(op.Responses))
	for c := range op.Responses {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	b.WriteString("\nAnswers:\n\n")
	for _, c := range codes {
		r := op.Responses[c]
		desc := r.Description
		if r.Ref != "" {
			desc = s.Components.Responses[strings.TrimPrefix(r.Ref, "#/components/responses/")].Description
		}
		fmt.Fprintf(b, "- `%s` %s\n", c, text(desc))
	}
	for _, cs := range op.CodeSamples {
		fmt.Fprintf(b, "\n```sh\n%s\n```\n", strings.TrimRight(cs.Source, "\n"))
	}
	return nil
}

// resolve follows a $ref to its schema.
func (s *spec) resolve(sc schema) schema {
	for sc.Ref != "" {
		sc = s.Components.Schemas[strings.TrimPrefix(sc.Ref, "#/components/schemas/")]
	}
	return sc
}

// typeOf names a schema's type for a reader.
func (s *spec) typeOf(sc schema) string {
	name := ""
	if sc.Ref != "" {
		name = strings.TrimPrefix(sc.Ref, "#/components/schemas/")
	}
	r := s.resolve(sc)
	var types []string
	switch t := r.Type.(type) {
	case string:
		types = []string{t}
	case []any:
		for _, x := range t {
			types = append(types, fmt.Sprint(x))
		}
	}
	for i, t := range types {
		switch {
		case t == "array" && r.Items != nil:
			types[i] = "list of " + s.typeOf(*r.Items)
		case t == "object" && name != "":
			types[i] = name
		case t == "string" && r.Format != "":
			types[i] = "string (" + r.Format + ")"
		}
	}
	if len(types) == 0 && name != "" {
		return name
	}
	return strings.Join(types, " or ")
}

// constraints lists a schema's enum, bounds and default after its text.
func (s *spec) constraints(sc schema) string {
	r := s.resolve(sc)
	var parts []string
	if len(r.Enum) > 0 {
		var vs []string
		for _, v := range r.Enum {
			vs = append(vs, fmt.Sprintf("`%v`", v))
		}
		parts = append(parts, "One of "+strings.Join(vs, ", ")+".")
	}
	if r.Minimum != nil && r.Maximum != nil {
		parts = append(parts, fmt.Sprintf("From %v to %v.", *r.Minimum, *r.Maximum))
	}
	if r.Default != nil {
		parts = append(parts, fmt.Sprintf("Default `%v`.", r.Default))
	}
	if len(parts) == 0 {
		return ""
	}
	return " " + strings.Join(parts, " ")
}

// title is a tag's heading.
func title(tag string) string {
	r := []rune(tag)
	return strings.ToUpper(string(r[0])) + string(r[1:])
}

// firstSentence shortens a summary for the contents.
func firstSentence(s string) string {
	s = text(s)
	if i := strings.Index(s, ". "); i >= 0 {
		s = s[:i+1]
	}
	if i := strings.Index(s, ": "); i >= 0 && i < 60 {
		s = s[:i]
	}
	return strings.TrimSuffix(s, ".")
}

// Slug is the anchor GitHub gives a heading: lower case, punctuation
// other than '-' and '_' dropped, spaces made '-'. (A second heading of
// the same text gets "-1" after it, and so on.)
func Slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}
