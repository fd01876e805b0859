package exprs

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/knit-net/knit/internal/testutil/nfttest"
)

func TestMergeRanges(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"10.0.0.0/24"}, "[10.0.0.0-10.0.0.255]"},
		{[]string{"10.0.1.0/24", "10.0.0.0/24"}, "[10.0.0.0-10.0.1.255]"},                     // adjacent
		{[]string{"10.0.0.0/16", "10.0.5.0/24"}, "[10.0.0.0-10.0.255.255]"},                   // contained
		{[]string{"10.0.0.0/24", "10.0.2.0/24"}, "[10.0.0.0-10.0.0.255 10.0.2.0-10.0.2.255]"}, // gap
		{[]string{"255.255.255.0/24", "255.255.255.128/25"}, "[255.255.255.0-255.255.255.255]"},
		{[]string{"fd00::/64"}, "[fd00::-fd00::ffff:ffff:ffff:ffff]"},
		{[]string{"10.0.0.7/32"}, "[10.0.0.7-10.0.0.7]"},
	} {
		if got := fmt.Sprint(MergeRanges(pfx(tc.in...))); got != tc.want {
			t.Errorf("MergeRanges(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestIntervalElemsOpenEnd(t *testing.T) {
	got := IntervalElems(pfx("10.0.0.0/24", "255.255.255.0/24"))
	if len(got) != 3 {
		t.Fatalf("got %d elements, want 3 (start, end, open start): %v", len(got), got)
	}
	if !bytes.Equal(got[1].Key, []byte{10, 0, 1, 0}) || !got[1].IntervalEnd {
		t.Errorf("end element = %v, want 10.0.1.0 flagged interval end", got[1])
	}
	if got[2].IntervalEnd {
		t.Errorf("range reaching 255.255.255.255 must have no end element: %v", got)
	}
}

func TestKeyEncoding(t *testing.T) {
	if got := IfName("kn-a"); len(got) != 16 || string(got[:4]) != "kn-a" || got[4] != 0 {
		t.Errorf("IfName = %q", got)
	}
	// ipv4_addr . ifname: 4 + 16 bytes, no padding needed.
	if got := Concat([]byte{10, 0, 0, 0}, IfName("x")); len(got) != 20 {
		t.Errorf("Concat length %d, want 20", len(got))
	}
	if got := Concat([]byte{1, 2}, []byte{3}); !bytes.Equal(got, []byte{1, 2, 0, 0, 3, 0, 0, 0}) {
		t.Errorf("Concat pads each field to 4 bytes: %v", got)
	}
}

// Literals of the tests.
var (
	pfx = nfttest.Prefixes
)
