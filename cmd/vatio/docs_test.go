package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"go/parser"
	"go/token"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/vatio-energy/vatio/internal/config"
	"github.com/vatio-energy/vatio/internal/crypt"
	"github.com/vatio-energy/vatio/internal/docgen"
	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/internal/testutil/smtptest"
	"github.com/vatio-energy/vatio/store"
)

// The docs check: the reference pages of docs/ are what the code
// generates, every config key, command and route is documented, and every
// shell example of the docs runs against a live Vatio.

var updateDocs = flag.Bool("update-docs", false, "write the generated pages of docs/ (make docs)")

// cliReference is docs/cli.md: the help of vatio and of each command.
func cliReference(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(`# Command-line reference

<!-- Generated from the commands' own help by the docs test (make docs); edit run.go and the commands, not this file. -->

One binary, ` + "`vatio`" + `, runs Vatio and does the few things that need it
stopped. Each command prints this help with ` + "`-h`" + `. The commands that take
` + "`-config`" + ` and ` + "`-data-dir`" + ` find the data as the server would: run them
where Vatio runs, as its user.

`)
	fmt.Fprintf(&b, "## `vatio`\n\nRuns the broker, the store, the API and the dashboard until SIGINT or SIGTERM, then stops without losing a reading it acknowledged.\n\n```text\n%s\n```\n", vatioHelp(t, ""))
	for _, c := range commands {
		args := helpArgs(c.name)
		fmt.Fprintf(&b, "\n## `vatio %s`\n\n```text\n%s\n```\n", strings.Join(args[:len(args)-1], " "), vatioHelp(t, c.name))
	}
	b.WriteString("\n## `vatio version`\n\nPrints the version, the Go version and the platform it was built for.\n")
	return b.String()
}

// helpArgs are the arguments that make command name ("" for the server)
// print its help.
func helpArgs(name string) []string {
	switch name {
	case "":
		return []string{"-h"}
	case "device":
		return []string{"device", "add", "-h"}
	}
	return []string{name, "-h"}
}

// vatioHelp returns what command name ("" for the server) prints for -h.
func vatioHelp(t *testing.T, name string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	args := helpArgs(name)
	if err := run(context.Background(), args, func(string) string { return "" }, &out, &errOut); err != nil {
		t.Fatalf("vatio %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimRight(out.String()+errOut.String(), "\n")
}

// TestDocsGenerated compares the generated pages with docs/; with
// -update-docs it writes them.
func TestDocsGenerated(t *testing.T) {
	cfgRef, err := docgen.ConfigReference(repoPath("internal/config"))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := os.ReadFile(repoPath("api/openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	apiRef, err := docgen.APIReference(spec)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{repoPath("docs/config.md"): cfgRef, repoPath("docs/api.md"): apiRef, repoPath("docs/cli.md"): cliReference(t)} {
		if *updateDocs {
			if changed, err := docgen.WriteFile(path, want); err != nil {
				t.Fatal(err)
			} else if changed {
				t.Logf("wrote %s", path)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("%s is not what the code generates: run make docs (%v)", path, err)
		}
	}
}

// docFiles are the pages whose examples run, in order.
func docFiles(t *testing.T) []string {
	files, err := filepath.Glob(repoPath("docs/*.md"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs: %v", err)
	}
	return append([]string{repoPath("README.md")}, files...)
}

// block is a fenced code block of a page.
type block struct {
	file string
	line int
	info string // what follows the fence: "sh", "sh stopped", "yaml"
	text string
	// setup is what the comment <!-- docs-test: ... --> just before the
	// block asks the test to arrange first, as the text around it says
	// (see docsVatio.arrange).
	setup string
}

var setupComment = regexp.MustCompile(`^<!-- docs-test: (.+) -->$`)

var fence = regexp.MustCompile("^(\\s*)```(.*)$")

// blocks returns the fenced code blocks of a Markdown file.
func blocks(t *testing.T, file string) []block {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []block
	var cur *block
	var indent, setup string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		m := fence.FindStringSubmatch(line)
		switch {
		case cur == nil && m != nil:
			cur, indent = &block{file: file, line: n, info: strings.TrimSpace(m[2]), setup: setup}, m[1]
			setup = ""
		case cur == nil:
			if c := setupComment.FindStringSubmatch(strings.TrimSpace(line)); c != nil {
				setup = c[1]
			} else if strings.TrimSpace(line) != "" {
				setup = ""
			}
		case cur != nil && m != nil && strings.TrimSpace(m[2]) == "":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += strings.TrimPrefix(line, indent) + "\n"
		}
	}
	if cur != nil {
		t.Errorf("%s:%d: a code block is not closed", file, cur.line)
	}
	return out
}

// The kinds of shell block: run with Vatio running, run with it stopped,
// or not run (it installs, starts a service, runs for ever): only its
// syntax is checked.
const (
	shLive    = "sh"
	shStopped = "sh stopped"
	shHost    = "sh host"
)

// prelude maps what the docs address (Vatio on localhost:5000 and
// localhost:1883) onto the instance under test, and makes curl fail on an
// HTTP error, as a reader would notice one; the vatio command is on PATH.
const prelude = `set -eo pipefail
curl() {
  local a=() bounded=
  for x in "$@"; do
    case $x in --max-time|-m) bounded=1 ;; esac
    a+=("${x//localhost:5000/$VATIO_TEST_HTTP}")
  done
  local rc=0
  command curl --fail-with-body -sS "${a[@]}" || rc=$?
  # A stream read for --max-time seconds ends with 28, as asked.
  if [ "$rc" = 28 ] && [ -n "$bounded" ]; then return 0; fi
  return $rc
}
# Port 8883 is MQTTS (named as localhost, which its certificate covers).
mqtt_to() {
  case " $* " in
    *" 8883 "*) echo "-h localhost -p $VATIO_TEST_MQTTS_PORT" ;;
    *) echo "-h 127.0.0.1 -p $VATIO_TEST_MQTT_PORT" ;;
  esac
}
mosquitto_pub() { command mosquitto_pub "$@" $(mqtt_to "$@"); }
mosquitto_sub() { command mosquitto_sub "$@" $(mqtt_to "$@"); }
[ -f "$VATIO_TEST_STATE" ] && source "$VATIO_TEST_STATE"
`

// docsVatio is the Vatio a page's examples run against, in a directory of
// its own laid out as a user's: ./config.yaml and ./data.
type docsVatio struct {
	t    *testing.T
	dir  string
	inst *instance
	tls  bool // inst serves HTTPS and MQTTS (see startTLS)
}

func (v *docsVatio) start() {
	if v.inst != nil && v.tls {
		v.stop()
	}
	if v.inst == nil {
		v.inst = startVatioEnv(v.t, filepath.Join(v.dir, "data"), filepath.Join(v.dir, "config.yaml"), func(string) string { return "" }, "")
	}
}

// startTLS runs the page's Vatio with tls.enabled, HTTPS and MQTTS on
// free ports, its certificate authority in ./data/tls.
func (v *docsVatio) startTLS() (mqttsPort string) {
	v.stop()
	base, err := os.ReadFile(filepath.Join(v.dir, "config.yaml"))
	if err != nil {
		v.t.Fatal(err)
	}
	cfg := filepath.Join(v.t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, append(base, "tls:\n  enabled: true\nmqtt:\n  tls_addr: 127.0.0.1:0\n"...), 0o600); err != nil {
		v.t.Fatal(err)
	}
	v.inst, v.tls = startVatioEnv(v.t, filepath.Join(v.dir, "data"), cfg, func(string) string { return "" }, ""), true
	m := regexp.MustCompile(`mqtts=\S+:(\d+)`).FindStringSubmatch(v.inst.logs.String())
	if m == nil {
		v.t.Fatalf("no MQTTS address in the log:\n%s", v.inst.logs)
	}
	return m[1]
}

// arrange makes, with Vatio stopped, what a block's docs-test comment
// asks for:
//   - "a scheduled backup": one in ./data/backups, as the schedule takes;
//   - "an archive of METER for YYYY-MM": readings of METER in that month,
//     archived by retention into ./data/archive (not encrypted, as
//     archives made before a key was set are).
func (v *docsVatio) arrange(setup string) {
	v.stop()
	dir := filepath.Join(v.dir, "data")
	archive := regexp.MustCompile(`^an archive of (\S+) for (\d{4}-\d{2})$`).FindStringSubmatch(setup)
	switch {
	case setup == "a scheduled backup":
		key, err := crypt.ParseKey(strings.Repeat("07", 32))
		if err != nil {
			v.t.Fatal(err)
		}
		st, err := store.Open(dir, store.Options{Encryption: key})
		if err != nil {
			v.t.Fatal(err)
		}
		defer st.Close()
		if _, err := st.BackupTo(st.BackupDir(), 7, time.Now()); err != nil {
			v.t.Fatal(err)
		}
	case archive != nil:
		meterID, month := archive[1], archive[2]
		from, err := time.Parse("2006-01", month)
		if err != nil {
			v.t.Fatal(err)
		}
		st, err := store.Open(dir, store.Options{Retention: store.Retention{Raw: 720 * time.Hour}})
		if err != nil {
			v.t.Fatal(err)
		}
		defer st.Close()
		for i := range 96 {
			if err := st.Append(meter.Reading{Meter: meterID, Time: from.Add(time.Duration(i) * 15 * time.Minute), PowerW: float64(1200 + i), Stamped: true}, nil); err != nil {
				v.t.Fatal(err)
			}
		}
		st.Flush()
		if st, err := st.ApplyRetention(context.Background(), time.Now()); err != nil || st.Archived == 0 {
			v.t.Fatalf("archive %s %s: %+v %v", meterID, month, st, err)
		}
	default:
		v.t.Fatalf("unknown docs-test setup %q", setup)
	}
}

func (v *docsVatio) stop() {
	if v.inst != nil {
		v.inst.stop(v.t)
		v.inst, v.tls = nil, false
	}
}

// TestDocsExamples runs every shell example of the docs, page by page,
// each page on a new Vatio, in the order a reader meets them; state a
// block exports (TOKEN) reaches the blocks after it.
func TestDocsExamples(t *testing.T) {
	for _, tool := range []string{"mosquitto_pub", "jq", "curl"} {
		need(t, tool, map[string]string{"mosquitto_pub": "mosquitto-clients", "jq": "jq", "curl": "curl"}[tool])
	}
	s3Backend := s3mem.New()
	if err := s3Backend.CreateBucket("vatio-backups"); err != nil {
		t.Fatal(err)
	}
	s3 := httptest.NewServer(gofakes3.New(s3Backend).Server())
	defer s3.Close()
	// Mail (alerts, statements) goes to an SMTP server of the test's own.
	box := smtptest.Start(t)
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range docFiles(t) {
		t.Run(repoRel(file), func(t *testing.T) {
			dir := t.TempDir()
			// Off-site copies go to an S3 server of the test's own.
			// (they are encrypted, so the key is set).
			cfg := fmt.Sprintf("offsite:\n  enabled: true\n  endpoint: %q\n  insecure: true\n  bucket: vatio-backups\n  prefix: %s/\n  access_key: AKIA\n  secret_key: s3cr3t-offsite\nencryption:\n  key: %s\n"+
				"alerts:\n  email:\n    addr: %s\n    from: Vatio <vatio@example.org>\n    to: [ops@example.org]\n    tls: none\n",
				strings.TrimPrefix(s3.URL, "http://"), filepath.Base(dir), strings.Repeat("07", 32), box.Addr)
			if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			// vatio, and bin/vatio as after make build, run the test binary
			// as the command.
			if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "bin", "vatio"), []byte("#!/bin/sh\nVATIO_TEST_CHILD=argv exec \"$VATIO_TEST_BIN\" \"$@\"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			v := &docsVatio{t: t, dir: dir}
			defer v.stop()
			state := filepath.Join(t.TempDir(), "state.sh")
			ran, hosted := 0, 0
			for _, b := range blocks(t, file) {
				where := fmt.Sprintf("%s:%d", b.file, b.line)
				switch b.info {
				case shLive, shStopped:
				case shHost:
					if out, err := exec.Command("bash", "-n", "-c", b.text).CombinedOutput(); err != nil {
						t.Errorf("%s: not valid shell: %s", where, out)
					}
					checkVatioFlags(t, where, b.text)
					hosted++
					continue
				case "yaml":
					var c config.Config
					if err := config.Parse([]byte(b.text), &c); err != nil {
						t.Errorf("%s: not a valid config.yaml fragment: %v", where, err)
					}
					continue
				default:
					if strings.HasPrefix(b.info, "sh") || strings.HasPrefix(b.info, "bash") || b.info == "console" {
						t.Errorf("%s: a shell block must be marked sh, sh stopped or sh host, not %q", where, b.info)
					}
					continue
				}
				env := []string{"VATIO_TEST_STATE=" + state, "VATIO_TEST_BIN=" + bin, "PATH=" + filepath.Join(dir, "bin") + ":" + os.Getenv("PATH")}
				if b.setup != "" && b.setup != "tls" {
					v.arrange(b.setup)
				}
				switch {
				case b.info == shLive && b.setup == "tls":
					mqtts := v.startTLS()
					_, port, _ := net.SplitHostPort(v.inst.http)
					env = append(env, "VATIO_TEST_HTTP=localhost:"+port, "VATIO_TEST_MQTTS_PORT="+mqtts)
				case b.info == shLive:
					v.start()
					_, port, _ := net.SplitHostPort(v.inst.mqtt)
					env = append(env, "VATIO_TEST_HTTP="+v.inst.http, "VATIO_TEST_MQTT_PORT="+port)
				default:
					v.stop()
				}
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				script := prelude + b.text + "\nexport -p | grep -v -e ' VATIO_TEST_' -e ' PATH=' > \"$VATIO_TEST_STATE\"\n"
				cmd := exec.CommandContext(ctx, "bash", "-c", script)
				cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
				out, err := cmd.CombinedOutput()
				cancel()
				if err != nil {
					logs := ""
					if v.inst != nil {
						logs = v.inst.logs.String()
					}
					t.Fatalf("%s: the example failed: %v\n%s\n--- its output:\n%s\n--- vatio's log:\n%s", where, err, b.text, out, logs)
				}
				ran++
			}
			t.Logf("%s: %d examples ran; %d that change the host were checked, not run", file, ran, hosted)
		})
	}
}

// TestDocsCoverEverything checks that every config key, command and route
// is documented, and that the guides link the references.
func TestDocsCoverEverything(t *testing.T) {
	read := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	ref := read(repoPath("docs/config.md"))
	for _, k := range config.Keys() {
		if !strings.Contains(ref, "| `"+k+"` |") {
			t.Errorf("config key %s is not in docs/config.md", k)
		}
	}
	cli := read(repoPath("docs/cli.md"))
	guides := read(repoPath("docs/user-guide.md")) + read(repoPath("docs/operator-guide.md"))
	for _, c := range append([]string{"version"}, commandNames()...) {
		if !strings.Contains(cli, "## `vatio "+c) {
			t.Errorf("command %s is not in docs/cli.md", c)
		}
		if !strings.Contains(guides, "vatio "+c) {
			t.Errorf("command %s is in neither guide", c)
		}
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal([]byte(read(repoPath("api/openapi.json"))), &doc); err != nil {
		t.Fatal(err)
	}
	api := read(repoPath("docs/api.md"))
	for path, ops := range doc.Paths {
		for m := range ops {
			if h := "### `" + strings.ToUpper(m) + " " + path + "`"; !strings.Contains(api, h+"\n") {
				t.Errorf("%s %s is not in docs/api.md", strings.ToUpper(m), path)
			}
		}
	}
	index := read(repoPath("docs/README.md"))
	for _, f := range []string{"user-guide.md", "operator-guide.md", "architecture.md", "config.md", "cli.md", "api.md", "questions.md", "preguntas.md"} {
		if !strings.Contains(index, "("+f) {
			t.Errorf("docs/README.md does not link %s", f)
		}
	}
	if !strings.Contains(read(repoPath("README.md")), "(docs/") {
		t.Error("README.md does not link the docs")
	}
}

func commandNames() []string {
	var out []string
	for _, c := range commands {
		out = append(out, c.name)
	}
	return out
}

// Links between the pages point at files and headings that exist.
func TestDocsLinks(t *testing.T) {
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	heading := regexp.MustCompile("(?m)^#+ (.+)$")
	anchors := map[string][]string{}
	for _, f := range docFiles(t) {
		b, _ := os.ReadFile(f)
		counts := map[string]int{}
		for _, m := range heading.FindAllStringSubmatch(withoutCode(string(b)), -1) {
			a := docgen.Slug(m[1])
			if n := counts[a]; n > 0 {
				counts[a]++
				a = fmt.Sprintf("%s-%d", a, n)
			} else {
				counts[a] = 1
			}
			anchors[f] = append(anchors[f], a)
		}
	}
	for _, f := range docFiles(t) {
		b, _ := os.ReadFile(f)
		inCode := false
		for n, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				inCode = !inCode
			}
			if inCode {
				continue
			}
			for _, m := range link.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				path, frag, _ := strings.Cut(target, "#")
				file := f
				if path != "" {
					file = filepath.Join(filepath.Dir(f), path)
					if _, err := os.Stat(file); err != nil {
						t.Errorf("%s:%d: link to %s: no such file", f, n+1, target)
						continue
					}
				}
				if frag != "" && strings.HasSuffix(file, ".md") && !slices.Contains(anchors[filepath.Clean(file)], frag) {
					t.Errorf("%s:%d: link to %s: no such heading", f, n+1, target)
				}
			}
		}
	}
}

// withoutCode is Markdown with its fenced code blocks left out.
func withoutCode(md string) string {
	var b strings.Builder
	inCode := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inCode = !inCode
			continue
		}
		if !inCode {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// TestArchitectureDependencies reads the packages table of
// docs/architecture.md and checks that each package imports exactly the
// Vatio packages its row allows.
func TestArchitectureDependencies(t *testing.T) {
	const module = "github.com/vatio-energy/vatio"
	b, err := os.ReadFile(repoPath("docs/architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "| package | what it does | may import |")
	if !ok {
		t.Fatal("docs/architecture.md has no packages table")
	}
	name := regexp.MustCompile("`([a-z/]+)`")
	allowed := map[string][]string{}
	for _, line := range strings.Split(table, "\n")[2:] {
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(line, "|")
		var may []string
		for _, m := range name.FindAllStringSubmatch(cells[3], -1) {
			may = append(may, m[1])
		}
		slices.Sort(may)
		for _, m := range name.FindAllStringSubmatch(cells[1], -1) {
			allowed[m[1]] = may
		}
	}
	dirs := map[string]string{} // directory: package, as the table names it
	err = filepath.WalkDir(repoRoot, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != repoRoot && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "testdata" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			dir := filepath.Dir(path)
			if dirs[dir] = repoRel(dir); dirs[dir] == "cmd/vatio" {
				dirs[dir] = "main"
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for dir, pkg := range dirs {
		want, ok := allowed[pkg]
		if !ok {
			t.Errorf("package %s is not in the packages table of docs/architecture.md", pkg)
			continue
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		got := map[string]bool{}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range af.Imports {
				if p, ok := strings.CutPrefix(strings.Trim(imp.Path.Value, `"`), module+"/"); ok {
					got[p] = true
				}
			}
		}
		var imports []string
		for p := range got {
			imports = append(imports, p)
		}
		slices.Sort(imports)
		if !slices.Equal(imports, want) {
			t.Errorf("package %s imports %v; docs/architecture.md says it may import %v", pkg, imports, want)
		}
		delete(allowed, pkg)
	}
	for pkg := range allowed {
		t.Errorf("docs/architecture.md lists package %s, which does not exist", pkg)
	}
}

// vatioCalls returns the argument lists of the vatio commands in shell
// text: a vatio (bin/vatio, /usr/local/bin/vatio) in command position,
// after sudo and VAR=value assignments.
func vatioCalls(text string) [][]string {
	var out [][]string
	split := regexp.MustCompile(`&&|\|\||[;|]|\$\(|'`)
	for _, line := range strings.Split(strings.ReplaceAll(text, "\\\n", " "), "\n") {
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		for _, seg := range split.Split(line, -1) {
			f := strings.Fields(strings.Trim(seg, " )"))
			for len(f) > 0 && (f[0] == "sudo" || f[0] == "exec" || strings.Contains(f[0], "=")) {
				f = f[1:]
			}
			if len(f) > 0 && (f[0] == "vatio" || strings.HasSuffix(f[0], "/vatio")) {
				out = append(out, f[1:])
			}
		}
	}
	return out
}

// checkVatioFlags checks, for blocks that are not run, that every vatio
// command and flag they use exists, by the command's own help.
func checkVatioFlags(t *testing.T, where, text string) {
	t.Helper()
	for _, args := range vatioCalls(text) {
		usage, rest := vatioHelp(t, ""), args
		if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			switch {
			case args[0] == "version":
				continue
			case slices.Contains(commandNames(), args[0]):
				usage, rest = vatioHelp(t, args[0]), args[1:]
			default:
				t.Errorf("%s: vatio %s is not a command", where, args[0])
				continue
			}
		}
		for _, a := range rest {
			if flag, ok := strings.CutPrefix(a, "-"); ok {
				flag, _, _ = strings.Cut(flag, "=")
				if !strings.Contains(usage, "\n  -"+flag+" ") && !strings.Contains(usage, "\n  -"+flag+"\n") {
					t.Errorf("%s: vatio has no flag -%s here", where, flag)
				}
			}
		}
	}
}

// TestUserGuideImportTotals runs the examples of the user guide's
// "Bringing in history", through the API of a running Vatio and then with
// `vatio import` into a stopped one, and checks that the energy per day the
// API answers is what the guide's table says the files give.
func TestUserGuideImportTotals(t *testing.T) {
	need(t, "curl", "curl")
	guide := repoPath("docs", "user-guide.md")
	text, err := os.ReadFile(guide)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(text), "\n")
	first := slices.Index(lines, "### Bringing in history") + 1
	last := first + slices.IndexFunc(lines[first:], func(l string) bool { return strings.HasPrefix(l, "#") })
	if first == 0 || last < first {
		t.Fatal("no section \"Bringing in history\" in the user guide")
	}
	type dayKWh struct {
		meter, day string
		kWh        float64
	}
	var want []dayKWh
	row := regexp.MustCompile(`^\| (\S+) \| (\d{4}-\d{2}-\d{2}) \| ([0-9.]+) \|$`)
	for _, l := range lines[first:last] {
		if m := row.FindStringSubmatch(l); m != nil {
			kwh, _ := strconv.ParseFloat(m[3], 64)
			want = append(want, dayKWh{m[1], m[2], kwh})
		}
	}
	var live, stopped []block
	for _, b := range blocks(t, guide) {
		if b.line > first && b.line < last {
			switch b.info {
			case shLive:
				live = append(live, b)
			case shStopped:
				stopped = append(stopped, b)
			}
		}
	}
	if len(want) < 3 || len(live) < 3 || len(stopped) != 1 {
		t.Fatalf("the section has %d rows of totals, %d examples with Vatio running and %d stopped", len(want), len(live), len(stopped))
	}
	zone := regexp.MustCompile(`dashboard's time zone \(` + "`dashboard.timezone`" + `,\s+(\S+) here\)`).FindStringSubmatch(strings.Join(lines[first:last], "\n"))
	if zone == nil {
		t.Fatal("the section does not say in which time zone its days are")
	}
	loc, err := time.LoadLocation(zone[1])
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.yaml"), []byte("dashboard:\n  timezone: "+zone[1]+"\n"), 0o600)
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	os.WriteFile(filepath.Join(dir, "bin", "vatio"), []byte("#!/bin/sh\nVATIO_TEST_CHILD=argv exec \"$VATIO_TEST_BIN\" \"$@\"\n"), 0o755)
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	runBlock := func(b block, env ...string) {
		t.Helper()
		cmd := exec.Command("bash", "-c", prelude+b.text)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), append(env, "TOKEN="+testAdminToken, "VATIO_TEST_STATE=/dev/null", "VATIO_TEST_BIN="+bin,
			"PATH="+filepath.Join(dir, "bin")+":"+os.Getenv("PATH"))...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s:%d: %v\n%s", b.file, b.line, err, out)
		}
	}
	check := func(inst *instance, how string) {
		t.Helper()
		for _, w := range want {
			day, err := time.ParseInLocation("2006-01-02", w.day, loc)
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Points []struct {
					EnergyKWh float64 `json:"energy_kwh"`
				} `json:"points"`
			}
			url := fmt.Sprintf("http://%s/api/v1/meters/%s/energy?interval=day&from=%s&to=%s", inst.http, w.meter,
				day.UTC().Format(time.RFC3339), day.AddDate(0, 0, 1).UTC().Format(time.RFC3339))
			if code := getJSON(t, url, &got); code != 200 || len(got.Points) != 1 {
				t.Fatalf("%s: GET %s = %d %+v", how, url, code, got)
			}
			// Exactly: the answer carries no float noise (2.5099999999997746).
			if e := got.Points[0].EnergyKWh; e != w.kWh {
				t.Errorf("%s: %s on %s: %v kWh; the user guide says %v", how, w.meter, w.day, e, w.kWh)
			}
		}
	}

	inst := startVatioWith(t, filepath.Join(dir, "data-api"), filepath.Join(dir, "config.yaml"))
	for _, b := range live {
		runBlock(b, "VATIO_TEST_HTTP="+inst.http)
	}
	check(inst, "imported through the API")
	inst.stop(t)

	runBlock(stopped[0]) // into ./data, with Vatio stopped
	check(startVatioWith(t, filepath.Join(dir, "data"), filepath.Join(dir, "config.yaml")), "imported with vatio import")
}
