package policy

import (
	"slices"
	"strconv"
	"strings"

	v1 "github.com/knit-net/knit/api/v1"
)

// IP protocol numbers of the protocols NetworkPolicy names.
const (
	ProtoAny  uint8 = 0
	ProtoTCP  uint8 = 6
	ProtoUDP  uint8 = 17
	ProtoSCTP uint8 = 132
)

// nProtos is the number of protocols a policy port can name; portSet keeps
// one span list per protocol, in this order.
const nProtos = 3

var (
	protoNums  = [nProtos]uint8{ProtoTCP, ProtoUDP, ProtoSCTP}
	protoNames = [nProtos]string{"tcp", "udp", "sctp"}
)

// protoIndex maps a policy or container port protocol ("" is TCP) to its
// portSet index.
func protoIndex(name string) (int, bool) {
	switch strings.ToUpper(name) {
	case "", v1.ProtocolTCP:
		return 0, true
	case v1.ProtocolUDP:
		return 1, true
	case v1.ProtocolSCTP:
		return 2, true
	}
	return 0, false
}

// ProtoName is the lower-case name of an IP protocol number ("tcp"), or the
// number.
func ProtoName(p uint8) string {
	for i, n := range protoNums {
		if n == p {
			return protoNames[i]
		}
	}
	if p == ProtoAny {
		return "any"
	}
	return strconv.Itoa(int(p))
}

// ParseProto reads "tcp", "UDP", "sctp" or a protocol number; "" is TCP.
func ParseProto(s string) (uint8, bool) {
	if i, ok := protoIndex(s); ok {
		return protoNums[i], true
	}
	n, err := strconv.ParseUint(s, 10, 8)
	return uint8(n), err == nil
}

// span is an inclusive port range.
type span struct{ lo, hi uint16 }

var fullSpan = span{0, 65535}

// portSet is a set of (protocol, port) pairs: everything (any protocol,
// any port) or, per protocol, sorted spans that neither overlap nor touch.
// Values are immutable once built: operations return new slices.
type portSet struct {
	all bool
	p   [nProtos][]span
}

func (s *portSet) empty() bool {
	if s.all {
		return false
	}
	for _, sp := range s.p {
		if len(sp) > 0 {
			return false
		}
	}
	return true
}

// has reports whether (protocol number, port) is in s.
func (s *portSet) has(proto uint8, port uint16) bool {
	if s.all {
		return true
	}
	for i, n := range protoNums {
		if n == proto {
			return spansHave(s.p[i], port)
		}
	}
	return false
}

func spansHave(sps []span, port uint16) bool {
	i, _ := slices.BinarySearchFunc(sps, port, func(sp span, p uint16) int {
		if sp.hi < p {
			return -1
		}
		if sp.lo > p {
			return 1
		}
		return 0
	})
	return i < len(sps) && sps[i].lo <= port && port <= sps[i].hi
}

// intersects reports whether s holds any port of sp for protocol index i
// (i < 0: any protocol, sp the full range).
func (s *portSet) intersects(i int, sp span) bool {
	if s.all {
		return true
	}
	if i < 0 {
		return !s.empty()
	}
	for _, x := range s.p[i] {
		if x.lo <= sp.hi && sp.lo <= x.hi {
			return true
		}
	}
	return false
}

// union returns a ∪ b.
func union(a, b portSet) portSet {
	if a.all || b.empty() {
		return a
	}
	if b.all || a.empty() {
		return b
	}
	var out portSet
	for i := range out.p {
		switch {
		case slices.Equal(a.p[i], b.p[i]) || len(b.p[i]) == 0:
			out.p[i] = a.p[i]
		case len(a.p[i]) == 0:
			out.p[i] = b.p[i]
		default:
			out.p[i] = normSpans(slices.Concat(a.p[i], b.p[i]))
		}
	}
	return out
}

// minus returns a \ b. It cannot express "all but some", so a.all needs
// b.all (callers handle an all-set first).
func minus(a, b portSet) portSet {
	if b.all {
		return portSet{}
	}
	if a.all {
		panic("policy: minus of the full port set")
	}
	var out portSet
	for i := range out.p {
		out.p[i] = spansMinus(a.p[i], b.p[i])
	}
	return out
}

// normSpans sorts spans and joins overlapping and adjacent ones, in place.
func normSpans(sps []span) []span {
	if len(sps) < 2 {
		return sps
	}
	slices.SortFunc(sps, func(a, b span) int { return int(a.lo) - int(b.lo) })
	out := sps[:1]
	for _, sp := range sps[1:] {
		last := &out[len(out)-1]
		if int(sp.lo) <= int(last.hi)+1 {
			last.hi = max(last.hi, sp.hi)
			continue
		}
		out = append(out, sp)
	}
	return out
}

// spansMinus returns a \ b for normalised span lists.
func spansMinus(a, b []span) []span {
	if len(b) == 0 {
		return a
	}
	var out []span
	j := 0
	for _, sp := range a {
		lo := int(sp.lo)
		for j < len(b) && int(b[j].hi) < lo {
			j++
		}
		k := j
		for ; k < len(b) && int(b[k].lo) <= int(sp.hi); k++ {
			if int(b[k].lo) > lo {
				out = append(out, span{uint16(lo), b[k].lo - 1})
			}
			lo = int(b[k].hi) + 1
		}
		if lo <= int(sp.hi) {
			out = append(out, span{uint16(lo), sp.hi})
		}
	}
	return out
}

// key is a canonical text of s, for grouping equal sets.
func (s *portSet) key() string {
	if s.all {
		return "*"
	}
	var b strings.Builder
	for i, sps := range s.p {
		if len(sps) == 0 {
			continue
		}
		b.WriteString(protoNames[i])
		for _, sp := range sps {
			b.WriteByte(' ')
			b.WriteString(strconv.Itoa(int(sp.lo)))
			if sp.hi != sp.lo {
				b.WriteByte('-')
				b.WriteString(strconv.Itoa(int(sp.hi)))
			}
		}
		b.WriteByte(';')
	}
	return b.String()
}
