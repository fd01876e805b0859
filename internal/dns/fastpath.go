package dns

import (
	"bytes"
	"encoding/binary"
	"net/netip"

	"github.com/miekg/dns"
)

// answerFast answers a UDP query for a name the server knows straight from
// its wire form, appending the answer to out: no unpacking, no allocation.
// It takes only the common case, and for anything else returns false, leaving
// the query to ServeDNS, which answers everything answerFast does the same
// way (the fuzz test compares them):
//
//   - a standard query (QR 0, opcode QUERY) with one question, class IN, type
//     other than PTR, no answer or authority records, and no additional
//     record but an OPT of version 0 without options;
//   - a name of letters, digits, '-' and '_' that is not a reverse name;
//   - the name is local or NXDOMAIN for this client (notLocal is forwarded);
//   - in the zone of services, the answer has only addresses, or none: no
//     CNAME (ExternalName), SRV or TXT record, no pod name;
//   - the answer fits the client's UDP size with compression.
func (s *Server) answerFast(q []byte, src netip.Addr, out []byte) ([]byte, bool) {
	if len(q) < 12+1+4 || q[2]&0xf8 != 0 { // QR and opcode
		return nil, false
	}
	if binary.BigEndian.Uint16(q[4:]) != 1 || binary.BigEndian.Uint16(q[6:]) != 0 || binary.BigEndian.Uint16(q[8:]) != 0 {
		return nil, false
	}
	arcount := binary.BigEndian.Uint16(q[10:])
	if arcount > 1 {
		return nil, false
	}
	var name [maxNameLen + 1]byte
	nl, off := 0, 12
	for {
		if off >= len(q) {
			return nil, false
		}
		l := int(q[off])
		off++
		if l == 0 {
			break
		}
		if l > 63 || off+l > len(q) || nl+l+1 > maxNameLen+1 {
			return nil, false
		}
		if nl > 0 {
			name[nl] = '.'
			nl++
		}
		for _, c := range q[off : off+l] {
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
			case 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			default:
				return nil, false
			}
			name[nl] = c
			nl++
		}
		off += l
	}
	if nl == 0 || nl > maxNameLen || off+4 > len(q) {
		return nil, false
	}
	qtype := binary.BigEndian.Uint16(q[off:])
	if qtype == dns.TypePTR || binary.BigEndian.Uint16(q[off+2:]) != dns.ClassINET {
		return nil, false
	}
	qend := off + 4
	if bytes.HasSuffix(name[:nl], []byte(".arpa")) {
		return nil, false // reverse names: ServeDNS
	}

	size, opt, do := dns.MinMsgSize, false, false
	if arcount == 1 {
		// OPT: root name, type 41, class = UDP size, TTL = ext. rcode, version,
		// flags; no options
		p := qend
		if len(q) != p+11 || q[p] != 0 || binary.BigEndian.Uint16(q[p+1:]) != dns.TypeOPT ||
			q[p+6] != 0 || binary.BigEndian.Uint16(q[p+9:]) != 0 {
			return nil, false
		}
		size = min(max(int(binary.BigEndian.Uint16(q[p+3:])), dns.MinMsgSize), ednsSize)
		opt, do = true, q[p+7]&0x80 != 0
	} else if len(q) != qend {
		return nil, false
	}

	var buf [4]rrset
	var sets []rrset
	var k kind
	rel, inZone := zoneRel(name[:nl], s.zone)
	if sx := s.svcs.Load(); sx != nil && inZone {
		rs, kz, ok := sx.fastLookup(rel, qtype)
		if !ok {
			return nil, false
		}
		sets, k = append(buf[:0], rs), kz
	} else {
		sn := s.snap.Load()
		sets, k = sn.matchName(sn.client(src), name[:nl], buf[:0])
		if k == notLocal {
			return nil, false
		}
	}
	rcode, n, rdlen := byte(dns.RcodeSuccess), 0, 0
	switch {
	case k == nxDomain:
		rcode = dns.RcodeNameError
	case qtype == dns.TypeA:
		n, rdlen = count(sets, false), 4
	case qtype == dns.TypeAAAA:
		n, rdlen = count(sets, true), 16
	}
	length := qend + n*(12+rdlen)
	if opt {
		length += 11
	}
	if length > size {
		return nil, false // ServeDNS truncates
	}

	// header: ID; QR, AA, RD copied; RA, CD copied, rcode; counts
	out = append(out, q[0], q[1], 0x80|0x04|q[2]&0x01, 0x80|q[3]&0x10|rcode, 0, 1)
	out = binary.BigEndian.AppendUint16(out, uint16(n))
	out = append(out, 0, 0, 0, 0)
	if opt {
		out[11] = 1
	}
	out = append(out, q[12:qend]...)
	for i, start := 0, s.rotation(n); i < n; i++ {
		// name: a pointer to the question's; type, class IN, TTL, rdata
		out = append(out, 0xc0, 12, 0, byte(qtype), 0, 1)
		out = binary.BigEndian.AppendUint32(out, s.ttl)
		out = append(out, 0, byte(rdlen))
		if rdlen == 4 {
			b := nth4(sets, (start+i)%n)
			out = append(out, b[:]...)
		} else {
			b := nth16(sets, (start+i)%n)
			out = append(out, b[:]...)
		}
	}
	if opt {
		out = append(out, 0, 0, byte(dns.TypeOPT), byte(ednsSize>>8), byte(ednsSize&0xff), 0, 0, 0, 0, 0, 0)
		if do {
			out[len(out)-4] = 0x80
		}
	}
	return out, true
}
