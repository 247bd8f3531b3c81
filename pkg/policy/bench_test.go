package policy

import (
	"fmt"
	"testing"
)

// hundredRules is 99 rules that miss a GET https://api.example.com/orders/7 request, mixing
// every matcher, method lists, exact and wildcard hosts, then one rule that matches it: the
// worst case for first-match-wins.
func hundredRules() []RuleSpec {
	var specs []RuleSpec
	for i := 0; len(specs) < 99; i++ {
		req := &RequirementSpec{Provider: "a", Scopes: []string{"admin"}}
		specs = append(specs,
			RuleSpec{Match: MatchSpec{Prefix: fmt.Sprintf("/svc%d/", i)}, Requires: req},
			RuleSpec{Match: MatchSpec{SafeRegex: fmt.Sprintf("/v[0-9]+/svc%d/[a-z]+/[0-9]+", i)}, Requires: req},
			RuleSpec{Match: MatchSpec{PathSeparatedPrefix: "/orders", Methods: []string{"POST", "DELETE"}}, Requires: req},
			RuleSpec{Match: MatchSpec{Prefix: "/orders", Hosts: []string{fmt.Sprintf("svc%d.example.com", i), "*.internal.example.com"}}, Requires: req},
			RuleSpec{Match: MatchSpec{Path: fmt.Sprintf("/orders/%d/items", i)}},
		)
	}
	specs = specs[:99]
	return append(specs, RuleSpec{
		Match:    MatchSpec{PathSeparatedPrefix: "/orders", Methods: []string{"GET", "HEAD"}, Hosts: []string{"api.example.com"}},
		Requires: &RequirementSpec{Provider: "b"},
	})
}

// BenchmarkMatch100 is the rule-matching cost of one request against 100 rules, the match in
// the last one. Compare with pkg/authz BenchmarkDecide (one signature check and the rest).
func BenchmarkMatch100(b *testing.B) {
	p, _, err := Compile(hundredRules(), []string{"a", "b"})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, path string }{
		{"plain", "/orders/7"},
		// A path the ambiguity check reads five more ways (each a full pass over the rules).
		{"readings", "/orders//7/./x"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req, i, err := p.MatchRequest("GET", "api.example.com:443", c.path)
				if err != nil || i != 99 || req == nil {
					b.Fatalf("MatchRequest = %v, %d, %v", req, i, err)
				}
			}
		})
	}
}
