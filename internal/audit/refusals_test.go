package audit

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// syncBuffer is a log destination safe for the summary's timer.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRefusalsLoggedAtARate records a flood of refused log-ins and
// tokens: the first of each address in each interval, for so many
// addresses, are written to the log with the client's address and user
// name, so one address's flood hides no other's; the rest are counted in
// one line at the interval's end that names the addresses with the most;
// other entries are not written at all.
func TestRefusalsLoggedAtARate(t *testing.T) {
	l := openLog(t)
	var out syncBuffer
	l.log = slog.New(slog.NewTextHandler(&out, nil))
	l.logged = &gate{burst: 3, addrs: 2, interval: 300 * time.Millisecond, onHeld: l.logHeld}

	l.Record(Entry{Who: "ana", Action: "login", Addr: "192.0.2.1", Status: 303})
	l.Record(Entry{Who: "token:ci", Action: "token_used", Addr: "192.0.2.1"})
	for i := range 10 {
		l.Record(Entry{Who: fmt.Sprint("mallory-", i), Action: "login_failed", Target: "/login", Addr: "198.51.100.7", Status: 401})
	}
	l.Record(Entry{Who: "token:ci", Action: "token_refused", Target: "/api/v1/meters", Addr: "198.51.100.8", Status: 401, Detail: "token 0123456789ab"})
	l.Record(Entry{Who: "eve", Action: "login_failed", Target: "/login", Addr: "198.51.100.9", Status: 401}) // a third address

	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "not logged one by one") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	logged := out.String()
	lines := strings.Split(strings.TrimSpace(logged), "\n")
	if len(lines) != 5 {
		t.Fatalf("log has %d lines, want 3 refusals of the flood, the token's and the count of the 8 others:\n%s", len(lines), logged)
	}
	for i, line := range lines[:3] {
		for _, want := range []string{`msg="log-in refused"`, "addr=198.51.100.7", fmt.Sprintf("user=mallory-%d", i), "status=401", "target=/login"} {
			if !strings.Contains(line, want) {
				t.Errorf("line %d = %s, want %s in it", i, line, want)
			}
		}
	}
	if !strings.Contains(lines[3], `msg="API token refused"`) || !strings.Contains(lines[3], "addr=198.51.100.8") {
		t.Errorf("line 3 = %s, want the other address's refused token, not hidden by the flood", lines[3])
	}
	if !strings.Contains(lines[4], "count=8") || !strings.Contains(lines[4], `top="198.51.100.7 (7), 198.51.100.9 (1)"`) {
		t.Errorf("summary = %s, want count=8 (7 log-ins of the flood, one of a third address) and the addresses", lines[4])
	}
	if strings.Contains(logged, "ana") || strings.Contains(logged, "token_used") {
		t.Errorf("log has entries that are not refusals:\n%s", logged)
	}

	// The next interval logs again.
	l.Record(Entry{Who: "token:ci", Action: "token_refused", Target: "/api/v1/meters", Addr: "198.51.100.8", Status: 401, Detail: "token 0123456789ab"})
	if last := out.String()[len(logged):]; !strings.Contains(last, `msg="API token refused"`) || !strings.Contains(last, "user=token:ci") ||
		!strings.Contains(last, `detail="token 0123456789ab"`) {
		t.Errorf("after the interval, a refused token logged %q", last)
	}
}

// TestRefusalsStoredAtARate records a flood of refused log-ins from one
// address among others': the audit log stores the first few of each
// address in each interval, for so many addresses, and every entry that is
// not a refusal; at the interval's end one entry counts those held back
// and names where most came from.
func TestRefusalsStoredAtARate(t *testing.T) {
	l := openLog(t)
	l.stored = &gate{burst: 2, addrs: 2, interval: 300 * time.Millisecond, onHeld: l.storeHeld}

	for i := range 10 {
		l.Record(Entry{Who: fmt.Sprint("mallory-", i), Action: "login_failed", Target: "/login", Addr: "198.51.100.7", Status: 401})
		l.Record(Entry{Who: "token:ci", Action: "token_used", Target: fmt.Sprint("/api/v1/meters/", i), Addr: "192.0.2.1"})
	}
	l.Record(Entry{Who: "token:ci", Action: "token_refused", Target: "/api/v1/meters", Addr: "198.51.100.8", Status: 401})
	l.Record(Entry{Who: "eve", Action: "setup_refused", Target: "/setup", Addr: "198.51.100.9", Status: 403}) // a third address

	count := func() map[string]int {
		es, err := l.List(1000, nil)
		if err != nil {
			t.Fatal(err)
		}
		n := map[string]int{}
		for _, e := range es {
			n[e.Action+" "+e.Addr]++
		}
		return n
	}
	got := count()
	want := map[string]int{"login_failed 198.51.100.7": 2, "token_used 192.0.2.1": 10, "token_refused 198.51.100.8": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("stored %v, want %v", got, want)
	}
	deadline := time.Now().Add(10 * time.Second)
	var held []Entry
	for len(held) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		var err error
		if held, err = l.List(10, func(e Entry) bool { return e.Action == "refusals_held" }); err != nil {
			t.Fatal(err)
		}
	}
	if len(held) != 1 {
		t.Fatalf("%d refusals_held entries after the interval, want 1", len(held))
	}
	if d := held[0].Detail; !strings.HasPrefix(d, "9 more refused") || !strings.Contains(d, "login_failed from 198.51.100.7 (8), setup_refused from 198.51.100.9 (1)") {
		t.Errorf("refusals_held says %q, want 9 held, most log-ins from 198.51.100.7 (8), then a setup from 198.51.100.9 (1)", d)
	}
	// The next interval stores again.
	l.Record(Entry{Who: "mallory", Action: "login_failed", Target: "/login", Addr: "198.51.100.7", Status: 401})
	if n := count()["login_failed 198.51.100.7"]; n != 3 {
		t.Errorf("after the interval, %d refused log-ins of the flood stored, want 3", n)
	}
}

// TestCloseStoresTheCount: closing the log stores the count of refusals
// held back at once, not at the interval's end, which a stopping process
// would not reach.
func TestCloseStoresTheCount(t *testing.T) {
	l := openLog(t)
	l.stored = &gate{burst: 1, addrs: 1, interval: time.Hour, onHeld: l.storeHeld}
	for range 4 {
		l.Record(Entry{Action: "token_refused", Target: "/api/v1/meters", Addr: "198.51.100.7", Status: 401})
	}
	l.Close()
	held, err := l.List(10, func(e Entry) bool { return e.Action == "refusals_held" })
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 1 || !strings.HasPrefix(held[0].Detail, "3 more refused") {
		t.Fatalf("after Close: %+v, want one entry counting 3 held", held)
	}
	if l.stored.summary != nil {
		t.Error("a timer still runs after Close")
	}
}

// TestEntriesAreClipped: whatever a client sends, an entry's fields are
// cut to their bounds, at a character's start.
func TestEntriesAreClipped(t *testing.T) {
	l := openLog(t)
	long := strings.Repeat("é", 5000)
	l.Record(Entry{Who: long, Action: "login_failed", Target: "/" + long, Addr: long, Detail: long})
	es, err := l.List(1, nil)
	if err != nil || len(es) != 1 {
		t.Fatalf("List: %v, %v", es, err)
	}
	e := es[0]
	for name, f := range map[string]struct {
		s   string
		max int
	}{"who": {e.Who, maxField}, "target": {e.Target, maxField}, "addr": {e.Addr, maxField}, "detail": {e.Detail, maxDetail}} {
		if len(f.s) > f.max+len("…") || !strings.HasSuffix(f.s, "…") || !utf8.ValidString(f.s) {
			t.Errorf("%s: %d bytes, valid UTF-8 %v; want at most %d and a mark of the cut", name, len(f.s), utf8.ValidString(f.s), f.max)
		}
	}
}

func TestClip(t *testing.T) {
	long := strings.Repeat("é", 80) // 160 bytes
	if got := clip(long); len(got) > 100+len("…") || !strings.HasSuffix(got, "…") || !strings.HasPrefix(long, strings.TrimSuffix(got, "…")) {
		t.Errorf("clip(160 bytes) = %q", got)
	}
	if got := clip("ana"); got != "ana" {
		t.Errorf("clip(ana) = %q", got)
	}
}
