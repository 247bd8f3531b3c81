package config

import (
	configv1 "github.com/jwtauthz/jwtauthz/proto-gen/jwtauthz/config/v1"

	"github.com/jwtauthz/jwtauthz/pkg/policy"
)

// Rules converts the config's rules for policy.Compile.
func Rules(c *configv1.Config) []policy.RuleSpec {
	out := make([]policy.RuleSpec, 0, len(c.GetRules()))
	for _, r := range c.GetRules() {
		m := r.GetMatch()
		spec := policy.RuleSpec{Match: policy.MatchSpec{
			Prefix:              m.GetPrefix(),
			PathSeparatedPrefix: m.GetPathSeparatedPrefix(),
			Path:                m.GetPath(),
			SafeRegex:           m.GetSafeRegex(),
			Methods:             m.GetMethods(),
			Hosts:               m.GetHosts(),
		}}
		if r.Requires != nil {
			spec.Requires = requirement(r.Requires)
		}
		out = append(out, spec)
	}
	return out
}

func requirement(r *configv1.Requirement) *policy.RequirementSpec {
	s := &policy.RequirementSpec{Provider: r.GetProvider(), AllowMissing: r.GetAllowMissing(), Scopes: r.GetScopes()}
	for _, a := range r.GetAny() {
		s.Any = append(s.Any, requirement(a))
	}
	for _, a := range r.GetAll() {
		s.All = append(s.All, requirement(a))
	}
	if len(r.GetClaims()) > 0 {
		s.Claims = map[string][]any{}
		for k, lv := range r.GetClaims() {
			s.Claims[k] = lv.AsSlice()
		}
	}
	return s
}
