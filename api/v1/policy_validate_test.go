package v1

import (
	"reflect"
	"strings"
	"testing"
)

func i32(n int32) *int32 { return &n }

func portNum(n int32) *IntOrString { return &IntOrString{Int: n} }

func portNamed(s string) *IntOrString { return &IntOrString{Str: s, IsStr: true} }

// validPolicy uses every part of the API.
func validPolicy() NetworkPolicy {
	return NetworkPolicy{
		APIVersion: NetworkingAPIVersion, Kind: KindNetworkPolicy,
		Metadata: ObjectMeta{Name: "db.only", Labels: map[string]string{"team": "a"}, Annotations: map[string]string{"Example.com/Note": "x"}},
		Spec: NetworkPolicySpec{
			PodSelector: LabelSelector{MatchLabels: map[string]string{"app": "db"}, MatchExpressions: []LabelSelectorRequirement{
				{Key: "tier", Operator: SelectorOpIn, Values: []string{"a", "b"}},
				{Key: "example.com/legacy", Operator: SelectorOpDoesNotExist},
			}},
			Ingress: []NetworkPolicyIngressRule{{
				Ports: []NetworkPolicyPort{{Port: portNum(5432)}, {Protocol: ProtocolUDP, Port: portNum(32000), EndPort: i32(32768)}, {Protocol: ProtocolSCTP, Port: portNamed("metrics")}, {}},
				From: []NetworkPolicyPeer{
					{PodSelector: &LabelSelector{MatchLabels: map[string]string{"app": "api"}}, NamespaceSelector: &LabelSelector{}},
					{IPBlock: &IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16", "10.2.3.4/32"}}},
					{IPBlock: &IPBlock{CIDR: "2001:db8::/32", Except: []string{"2001:db8:1::/48"}}},
				},
			}},
			Egress: []NetworkPolicyEgressRule{{To: []NetworkPolicyPeer{{NamespaceSelector: &LabelSelector{MatchExpressions: []LabelSelectorRequirement{{Key: "env", Operator: SelectorOpExists}}}}}}},
		},
	}
}

func TestNetworkPolicyValidateDefaults(t *testing.T) {
	p := validPolicy()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if p.Metadata.Namespace != DefaultNamespace {
		t.Errorf("namespace %q", p.Metadata.Namespace)
	}
	var protos []string
	for _, pp := range p.Spec.Ingress[0].Ports {
		protos = append(protos, pp.Protocol)
	}
	if want := []string{"TCP", "UDP", "SCTP", "TCP"}; !reflect.DeepEqual(protos, want) {
		t.Errorf("protocols %q, want %q", protos, want)
	}
	if want := []string{"Ingress", "Egress"}; !reflect.DeepEqual(p.Spec.PolicyTypes, want) {
		t.Errorf("policyTypes %q, want %q", p.Spec.PolicyTypes, want)
	}
	// Validating again changes nothing (knit apply validates, then knitd).
	again := p
	if err := again.Validate(); err != nil || !reflect.DeepEqual(again, p) {
		t.Errorf("second Validate: %v\n%+v", err, again)
	}

	ingressOnly := NetworkPolicy{APIVersion: NetworkingAPIVersion, Kind: KindNetworkPolicy, Metadata: ObjectMeta{Name: "deny", Namespace: "prod"}}
	if err := ingressOnly.Validate(); err != nil || !reflect.DeepEqual(ingressOnly.Spec.PolicyTypes, []string{"Ingress"}) || ingressOnly.Metadata.Namespace != "prod" {
		t.Errorf("default deny: %v %+v", err, ingressOnly)
	}
	egressOnly := NetworkPolicy{APIVersion: NetworkingAPIVersion, Kind: KindNetworkPolicy, Metadata: ObjectMeta{Name: "e"}, Spec: NetworkPolicySpec{PolicyTypes: []string{"Egress"}}}
	if err := egressOnly.Validate(); err != nil || !reflect.DeepEqual(egressOnly.Spec.PolicyTypes, []string{"Egress"}) {
		t.Errorf("given policyTypes are kept: %v %+v", err, egressOnly.Spec)
	}
}

func TestNetworkPolicyValidateErrors(t *testing.T) {
	const (
		label    = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue', or 'my_value', or '12345'), at most 63 characters"
		keyName  = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc'), at most 63 characters"
		portName = "must be no more than 15 characters, contain only lowercase letters, digits and '-', contain at least one letter, not start or end with '-' nor contain '--'"
		badCIDR  = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
	)
	in := func(p *NetworkPolicy) *NetworkPolicyIngressRule { return &p.Spec.Ingress[0] }
	for _, tc := range []struct {
		name   string
		mutate func(p *NetworkPolicy)
		want   string // after `The NetworkPolicy "db.only" is invalid: `
	}{
		{"kind", func(p *NetworkPolicy) { p.APIVersion = "extensions/v1beta1" },
			`apiVersion/kind: Invalid value: "extensions/v1beta1/NetworkPolicy": knit takes NetworkPolicies as apiVersion "networking.k8s.io/v1", kind "NetworkPolicy"`},
		{"name not a subdomain", func(p *NetworkPolicy) { p.Metadata.Name = "DB_only" },
			`metadata.name: Invalid value: "DB_only": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')`},
		{"name too long", func(p *NetworkPolicy) { p.Metadata.Name = strings.Repeat("a", 254) },
			`metadata.name: Invalid value: "` + strings.Repeat("a", 254) + `": must be no more than 253 characters`},
		{"namespace", func(p *NetworkPolicy) { p.Metadata.Namespace = "a.b" },
			`metadata.namespace: Invalid value: "a.b": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc'), at most 63 characters`},
		{"label value", func(p *NetworkPolicy) { p.Metadata.Labels["team"] = "a b" },
			`metadata.labels[team]: Invalid value: "a b": ` + label},
		{"annotation key", func(p *NetworkPolicy) { p.Metadata.Annotations["bad key"] = "" },
			`metadata.annotations: Invalid value: "bad key": ` + keyName},
		{"annotations too large", func(p *NetworkPolicy) { p.Metadata.Annotations["big"] = strings.Repeat("x", 256*1024) },
			`metadata.annotations: Invalid value: 262164 bytes: may not have more than 262144 bytes in all`},
		{"matchLabels key", func(p *NetworkPolicy) { p.Spec.PodSelector.MatchLabels["-app"] = "db" },
			`spec.podSelector.matchLabels: Invalid value: "-app": ` + keyName},
		{"matchLabels key prefix", func(p *NetworkPolicy) { p.Spec.PodSelector.MatchLabels["Example.com/app"] = "db" },
			`spec.podSelector.matchLabels: Invalid value: "Example.com/app": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')`},
		{"matchLabels value", func(p *NetworkPolicy) { p.Spec.PodSelector.MatchLabels["app"] = "db!" },
			`spec.podSelector.matchLabels[app]: Invalid value: "db!": ` + label},
		{"In without values", func(p *NetworkPolicy) { p.Spec.PodSelector.MatchExpressions[0].Values = nil },
			"spec.podSelector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"},
		{"NotIn without values", func(p *NetworkPolicy) {
			p.Spec.PodSelector.MatchExpressions[0] = LabelSelectorRequirement{Key: "tier", Operator: SelectorOpNotIn}
		}, "spec.podSelector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"},
		{"DoesNotExist with values", func(p *NetworkPolicy) { p.Spec.PodSelector.MatchExpressions[1].Values = []string{"x"} },
			"spec.podSelector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"},
		{"Exists with values", func(p *NetworkPolicy) {
			p.Spec.Egress[0].To[0].NamespaceSelector.MatchExpressions[0].Values = []string{"x"}
		},
			"spec.egress[0].to[0].namespaceSelector.matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"},
		{"unknown operator", func(p *NetworkPolicy) { p.Spec.PodSelector.MatchExpressions[0].Operator = "in" },
			`spec.podSelector.matchExpressions[0].operator: Unsupported value: "in": supported values: "DoesNotExist", "Exists", "In", "NotIn"`},
		{"expression key", func(p *NetworkPolicy) { p.Spec.PodSelector.MatchExpressions[0].Key = "tier_" },
			`spec.podSelector.matchExpressions[0].key: Invalid value: "tier_": ` + keyName},
		{"empty expression key", func(p *NetworkPolicy) { p.Spec.PodSelector.MatchExpressions[0].Key = "" },
			`spec.podSelector.matchExpressions[0].key: Required value: a label key is required`},
		{"expression value", func(p *NetworkPolicy) { p.Spec.PodSelector.MatchExpressions[0].Values[1] = "b c" },
			`spec.podSelector.matchExpressions[0].values[1]: Invalid value: "b c": ` + label},
		{"peer selector", func(p *NetworkPolicy) { in(p).From[0].PodSelector.MatchLabels["app"] = "-" },
			`spec.ingress[0].from[0].podSelector.matchLabels[app]: Invalid value: "-": ` + label},
		{"protocol", func(p *NetworkPolicy) { in(p).Ports[0].Protocol = "tcp" },
			`spec.ingress[0].ports[0].protocol: Unsupported value: "tcp": supported values: "TCP", "UDP", "SCTP"`},
		{"port 0", func(p *NetworkPolicy) { in(p).Ports[0].Port = portNum(0) },
			`spec.ingress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive`},
		{"port too big", func(p *NetworkPolicy) { in(p).Ports[0].Port = portNum(65536) },
			`spec.ingress[0].ports[0].port: Invalid value: 65536: must be between 1 and 65535, inclusive`},
		{"port name", func(p *NetworkPolicy) { in(p).Ports[2].Port = portNamed("8080") },
			`spec.ingress[0].ports[2].port: Invalid value: "8080": ` + portName},
		{"endPort below port", func(p *NetworkPolicy) { in(p).Ports[0] = NetworkPolicyPort{Port: portNum(80), EndPort: i32(70)} },
			`spec.ingress[0].ports[0].endPort: Invalid value: 70: must be greater than or equal to port`},
		{"endPort too big", func(p *NetworkPolicy) { in(p).Ports[1].EndPort = i32(70000) },
			`spec.ingress[0].ports[1].endPort: Invalid value: 70000: must be between 1 and 65535, inclusive`},
		{"endPort with a named port", func(p *NetworkPolicy) { in(p).Ports[2].EndPort = i32(9000) },
			"spec.ingress[0].ports[2].endPort: Invalid value: 9000: may not be specified when `port` is non-numeric (a port name)"},
		{"endPort without port", func(p *NetworkPolicy) { in(p).Ports[3].EndPort = i32(9000) },
			"spec.ingress[0].ports[3].endPort: Invalid value: 9000: may not be specified when `port` is not specified"},
		{"egress port", func(p *NetworkPolicy) {
			p.Spec.Egress[0].Ports = []NetworkPolicyPort{{Protocol: "ICMP"}}
		}, `spec.egress[0].ports[0].protocol: Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"`},
		{"empty peer", func(p *NetworkPolicy) { in(p).From[0] = NetworkPolicyPeer{} },
			`spec.ingress[0].from[0]: Required value: must specify a peer: podSelector, namespaceSelector or ipBlock`},
		{"empty egress peer", func(p *NetworkPolicy) { p.Spec.Egress[0].To[0] = NetworkPolicyPeer{} },
			`spec.egress[0].to[0]: Required value: must specify a peer: podSelector, namespaceSelector or ipBlock`},
		{"ipBlock with a selector", func(p *NetworkPolicy) { in(p).From[1].NamespaceSelector = &LabelSelector{} },
			`spec.ingress[0].from[1]: Forbidden: may not specify both ipBlock and another peer; make them separate peers`},
		{"no cidr", func(p *NetworkPolicy) { in(p).From[1].IPBlock = &IPBlock{} },
			`spec.ingress[0].from[1].ipBlock.cidr: Required value: `},
		{"bad cidr", func(p *NetworkPolicy) { in(p).From[1].IPBlock.CIDR = "10.0.0.0" },
			`spec.ingress[0].from[1].ipBlock.cidr: Invalid value: "10.0.0.0": ` + badCIDR},
		{"cidr with leading zeros", func(p *NetworkPolicy) { in(p).From[1].IPBlock.CIDR = "010.0.0.0/8" },
			`spec.ingress[0].from[1].ipBlock.cidr: Invalid value: "010.0.0.0/8": ` + badCIDR},
		{"cidr with host bits", func(p *NetworkPolicy) { in(p).From[1].IPBlock.CIDR = "10.1.2.3/8" },
			`spec.ingress[0].from[1].ipBlock.cidr: Invalid value: "10.1.2.3/8": must not have bits set beyond the prefix length; write "10.0.0.0/8"`},
		{"IPv4-mapped cidr", func(p *NetworkPolicy) { in(p).From[2].IPBlock = &IPBlock{CIDR: "::ffff:10.0.0.0/104"} },
			`spec.ingress[0].from[2].ipBlock.cidr: Invalid value: "::ffff:10.0.0.0/104": must not have an IPv4-mapped IPv6 address`},
		{"bad except", func(p *NetworkPolicy) { in(p).From[1].IPBlock.Except[1] = "10.1.0.0/33" },
			`spec.ingress[0].from[1].ipBlock.except[1]: Invalid value: "10.1.0.0/33": ` + badCIDR},
		{"except of the other family", func(p *NetworkPolicy) { in(p).From[1].IPBlock.Except[0] = "2001:db8::/64" },
			"spec.ingress[0].from[1].ipBlock.except[0]: Invalid value: \"2001:db8::/64\": must be of the same IP family as `cidr` (10.0.0.0/8)"},
		{"except outside", func(p *NetworkPolicy) { in(p).From[1].IPBlock.Except[0] = "11.0.0.0/16" },
			"spec.ingress[0].from[1].ipBlock.except[0]: Invalid value: \"11.0.0.0/16\": must be a strict subset of `cidr` (10.0.0.0/8)"},
		{"except equal", func(p *NetworkPolicy) { in(p).From[2].IPBlock.Except[0] = "2001:db8::/32" },
			"spec.ingress[0].from[2].ipBlock.except[0]: Invalid value: \"2001:db8::/32\": must be a strict subset of `cidr` (2001:db8::/32)"},
		{"except larger", func(p *NetworkPolicy) { in(p).From[1].IPBlock.Except[0] = "0.0.0.0/0" },
			"spec.ingress[0].from[1].ipBlock.except[0]: Invalid value: \"0.0.0.0/0\": must be a strict subset of `cidr` (10.0.0.0/8)"},
		{"policyType", func(p *NetworkPolicy) { p.Spec.PolicyTypes = []string{"Ingress", "ingress"} },
			`spec.policyTypes[1]: Unsupported value: "ingress": supported values: "Ingress", "Egress"`},
		{"policyType twice", func(p *NetworkPolicy) { p.Spec.PolicyTypes = []string{"Egress", "Egress"} },
			`spec.policyTypes[1]: Duplicate value: "Egress"`},
		{"three policyTypes", func(p *NetworkPolicy) { p.Spec.PolicyTypes = []string{"Ingress", "Egress", "Ingress"} },
			`spec.policyTypes: Invalid value: ["Ingress","Egress","Ingress"]: may not specify more than two policyTypes`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := validPolicy()
			tc.mutate(&p)
			err := p.Validate()
			want := `The NetworkPolicy "` + p.Metadata.Name + `" is invalid: ` + tc.want
			if err == nil || err.Error() != want {
				t.Fatalf("got  %v\nwant %s", err, want)
			}
			if CodeOf(err) != CodeInvalid {
				t.Errorf("code %q", CodeOf(err))
			}
		})
	}
}

func TestNetworkPolicyValidateAllErrors(t *testing.T) {
	p := validPolicy()
	p.Metadata.Name = ""
	p.Spec.Ingress[0].Ports[0].Protocol = "ICMP"
	p.Spec.Egress[0].To[0] = NetworkPolicyPeer{}
	err := p.Validate()
	want := "The NetworkPolicy \"\" is invalid: \n" +
		"* metadata.name: Required value: name or generateName is required\n" +
		"* spec.ingress[0].ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"TCP\", \"UDP\", \"SCTP\"\n" +
		"* spec.egress[0].to[0]: Required value: must specify a peer: podSelector, namespaceSelector or ipBlock"
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

func TestValidateNamespaceName(t *testing.T) {
	for _, ok := range []string{"default", "kube-system", "a", "123", strings.Repeat("a", 63)} {
		if err := ValidateNamespaceName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	const label = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc'), at most 63 characters"
	for name, want := range map[string]string{
		"":                      `The Namespace "" is invalid: metadata.name: Required value: give the namespace a name`,
		"Prod":                  `The Namespace "Prod" is invalid: metadata.name: Invalid value: "Prod": ` + label,
		"a.b":                   `The Namespace "a.b" is invalid: metadata.name: Invalid value: "a.b": ` + label,
		"-a":                    `The Namespace "-a" is invalid: metadata.name: Invalid value: "-a": ` + label,
		strings.Repeat("a", 64): `The Namespace "` + strings.Repeat("a", 64) + `" is invalid: metadata.name: Invalid value: "` + strings.Repeat("a", 64) + `": ` + label,
	} {
		if err := ValidateNamespaceName(name); err == nil || err.Error() != want || CodeOf(err) != CodeInvalid {
			t.Errorf("%q: got %v\nwant %s", name, err, want)
		}
	}
}

func TestNamespaceUpdateValidate(t *testing.T) {
	for _, ok := range []NamespaceUpdate{
		{},
		{Name: "prod", Set: map[string]string{"env": "prod", "example.com/team": ""}},
		{Name: "prod", Set: map[string]string{NamespaceNameLabel: "prod"}},
		{Set: map[string]string{"env": "prod"}, Remove: []string{"team", "example.com/x"}, Overwrite: true},
	} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
	const keyName = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc'), at most 63 characters"
	for _, tc := range []struct {
		u    NamespaceUpdate
		want string
	}{
		{NamespaceUpdate{Name: "Prod"}, `The Namespace "Prod" is invalid: metadata.name: Invalid value: "Prod": a lowercase RFC 1123 label`},
		{NamespaceUpdate{Name: "prod", Set: map[string]string{"bad key": "x"}}, `The Namespace "prod" is invalid: metadata.labels: Invalid value: "bad key": ` + keyName},
		{NamespaceUpdate{Set: map[string]string{"env": "has space"}}, `The Namespace "" is invalid: metadata.labels[env]: Invalid value: "has space": a valid label must be`},
		{NamespaceUpdate{Name: "prod", Set: map[string]string{NamespaceNameLabel: "dev"}}, `The Namespace "prod" is invalid: metadata.labels[kubernetes.io/metadata.name]: Invalid value: "dev": is always the namespace's name ("prod"); leave it out`},
		{NamespaceUpdate{Remove: []string{"bad key"}}, `The Namespace "" is invalid: remove[0]: Invalid value: "bad key": ` + keyName},
		{NamespaceUpdate{Set: map[string]string{"env": "a"}, Remove: []string{"env"}}, `remove[0]: Invalid value: "env": can not both modify and remove a label in the same command`},
	} {
		err := tc.u.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || CodeOf(err) != CodeInvalid {
			t.Errorf("%+v: got %v\nwant %s", tc.u, err, tc.want)
		}
	}
}
