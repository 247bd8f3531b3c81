package config

import configv1 "github.com/jwtauthz/jwtauthz/proto-gen/jwtauthz/config/v1"

// ParseFile reads and strictly decodes the file at path, without defaults or validation, so
// that callers can apply command-line overrides before validating (flags override the file).
func ParseFile(path string) (*configv1.Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data)
}
