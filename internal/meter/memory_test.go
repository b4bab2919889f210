package meter

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// remember sets meter's value to v in m at now and returns the old one.
func remember(m *memory[int], meter string, v int, now time.Time) (old int, ok bool) {
	m.update(meter, now, func(o int, k bool) int {
		old, ok = o, k
		return v
	})
	return old, ok
}

func TestMemoryIsBounded(t *testing.T) {
	m := newMemory[int](2, time.Minute)
	steps := []struct {
		after   time.Duration
		meter   string
		v       int
		old     int
		known   bool
		left    string // what m holds afterwards
		comment string
	}{
		{0, "a", 1, 0, false, "map[a:1]", "a first meter"},
		{0, "b", 2, 0, false, "map[a:1 b:2]", "full now"},
		{30 * time.Second, "c", 3, 0, false, "map[a:1 b:2]", "refused: a and b are live"},
		{30 * time.Second, "a", 4, 1, true, "map[a:4 b:2]", "a known meter is still updated"},
		{45 * time.Second, "c", 5, 0, false, "map[a:4 b:2]", "refused again"},
		{61 * time.Second, "c", 6, 0, false, "map[a:4 c:6]", "b, silent for over a minute, made room"},
		{62 * time.Second, "c", 7, 6, true, "map[a:4 c:7]", "c is remembered"},
		{62 * time.Second, "d", 8, 0, false, "map[a:4 c:7]", "a and c are live"},
		{91 * time.Second, "d", 9, 0, false, "map[c:7 d:9]", "a, updated at 30 s, made room"},
	}
	for i, st := range steps {
		old, known := remember(m, st.meter, st.v, now.Add(st.after))
		if left := fmt.Sprint(values(m)); old != st.old || known != st.known || left != st.left {
			t.Errorf("step %d (%s): update(%s, %d) saw %d, %v and left %s; want %d, %v and %s",
				i, st.comment, st.meter, st.v, old, known, left, st.old, st.known, st.left)
		}
	}
	// No entry left by the last sweep, at 91 s, can age past a minute
	// before c does: a full memory scans them again no sooner.
	if want := now.Add(62*time.Second + time.Minute); !m.nextSweep.Equal(want) {
		t.Errorf("next sweep at %v, want %v", m.nextSweep, want)
	}
}

// values returns what m remembers, meter by meter.
func values(m *memory[int]) map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]int, len(m.entries))
	for meter, e := range m.entries {
		out[meter] = e.v
	}
	return out
}

func TestMemoryConcurrentUpdates(t *testing.T) {
	m := newMemory[int](maxRemembered, time.Minute)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				meter := fmt.Sprintf("m%d", (g+i)%50)
				m.update(meter, now, func(old int, _ bool) int { return old + 1 })
			}
		})
	}
	wg.Wait()
	total := 0
	for _, v := range values(m) {
		total += v
	}
	if total != 8000 {
		t.Errorf("%d updates counted, want 8000", total)
	}
}
