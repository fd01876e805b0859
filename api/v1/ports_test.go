package v1

import (
	"strings"
	"testing"
)

func TestParsePortSpec(t *testing.T) {
	good := map[string]string{
		"8080:80":                  "8080:80/tcp",
		"80":                       "80/tcp",
		"127.0.0.1:8080:80/udp":    "127.0.0.1:8080:80/udp",
		"[fd00::1]:8080:80":        "[fd00::1]:8080:80/tcp",
		"8000-8002:9000-9002/sctp": "8000-8002:9000-9002/sctp",
		"127.0.0.1::80":            "127.0.0.1:80/tcp",
		"9000-9001":                "9000-9001/tcp",
		"8080:80/TCP":              "8080:80/tcp",
	}
	for in, want := range good {
		p, err := ParsePortSpec(in)
		if err != nil || p.String() != want {
			t.Errorf("ParsePortSpec(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	bad := map[string]string{
		"0:80":            "port 0 is out of range",
		"8080:70000":      "port 70000 is out of range",
		"8080-8082:80-81": "host range has 3 ports but container range has 2",
		"8080:80/icmp":    `unknown protocol "icmp"`,
		"1.2.3:8080:80":   "is not an IP address",
		"0.0.0.0:8080:80": "write no host address",
		"a:b:c:d":         "expected",
		"8082-8080:80":    "ends before it starts",
		"65535-65535:1":   "",
		"[::1]:8080:80":   "cannot forward [::1]",
	}
	for in, want := range bad {
		_, err := ParsePortSpec(in)
		if want == "" {
			if err != nil {
				t.Errorf("ParsePortSpec(%q): %v", in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePortSpec(%q) = %v; want error containing %q", in, err, want)
		}
	}
}

func TestValidatePortsDuplicates(t *testing.T) {
	parse := func(s string) PortMapping { p, _ := ParsePortSpec(s); return p }
	if err := ValidatePorts("c", []PortMapping{parse("8080:80"), parse("8079-8081:90-92")}); err == nil {
		t.Error("overlapping host ports accepted")
	}
	if err := ValidatePorts("c", []PortMapping{parse("8080:80"), parse("8080:80/udp")}); err != nil {
		t.Errorf("tcp and udp on one port refused: %v", err)
	}
	if err := ValidatePorts("c", []PortMapping{parse("127.0.0.1:8080:80"), parse("127.0.0.2:8080:80")}); err != nil {
		t.Errorf("different host addresses refused: %v", err)
	}
	if err := ValidatePorts("c", []PortMapping{parse("127.0.0.1:8080:80"), parse("8080:81")}); err == nil {
		t.Error("a wildcard and a specific address on one port accepted")
	}
}
