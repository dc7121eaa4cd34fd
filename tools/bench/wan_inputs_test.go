package main

import "testing"

// The closure must be what the issue asks for: at least 1,000 paths, a
// reference chain of at least 20, sizes mostly under 10 KB with a tail
// up to 50 MB.
func TestClosurePlanShape(t *testing.T) {
	nodes := planClosure()
	if len(nodes) < 1000 {
		t.Errorf("%d paths, want at least 1,000", len(nodes))
	}
	if d := closureDepth(nodes); d < 20 {
		t.Errorf("longest reference chain %d, want at least 20", d)
	}
	small, largest := 0, 0
	for i, n := range nodes {
		if n.size < 10_000 {
			small++
		}
		largest = max(largest, n.size)
		for _, d := range n.deps {
			if d >= i {
				t.Fatalf("%s depends on a later node %d: the plan must list dependencies first", n.name, d)
			}
		}
	}
	if small*10 < len(nodes)*9 {
		t.Errorf("%d of %d paths under 10 KB, want at least 90 %%", small, len(nodes))
	}
	if largest != closureBigMB*1_000_000 {
		t.Errorf("largest path %d bytes, want %d MB", largest, closureBigMB)
	}
}

func TestParseRTTs(t *testing.T) {
	got, err := parseRTTs("20, 50,100")
	if err != nil || len(got) != 3 || got[1].Milliseconds() != 50 {
		t.Errorf("parseRTTs(20, 50,100) = %v, %v", got, err)
	}
	for _, bad := range []string{"", "fast", "0", "50ms"} {
		if _, err := parseRTTs(bad); err == nil {
			t.Errorf("parseRTTs(%q) accepted", bad)
		}
	}
}
