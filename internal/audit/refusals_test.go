package audit

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
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
	l.refusals = &refusalLog{log: slog.New(slog.NewTextHandler(&out, nil)), burst: 3, addrs: 2, interval: 300 * time.Millisecond}

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

func TestClip(t *testing.T) {
	long := strings.Repeat("é", 80) // 160 bytes
	if got := clip(long); len(got) > 100+len("…") || !strings.HasSuffix(got, "…") || !strings.HasPrefix(long, strings.TrimSuffix(got, "…")) {
		t.Errorf("clip(160 bytes) = %q", got)
	}
	if got := clip("ana"); got != "ana" {
		t.Errorf("clip(ana) = %q", got)
	}
}
