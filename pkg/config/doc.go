// Package config loads and checks the jwtauthz configuration file.
//
// The YAML file is converted to JSON and decoded strictly into the generated protobuf schema
// (proto/jwtauthz/config/v1): unknown fields and wrong types are errors, reported with their
// field path before decoding so that a user sees every problem at once. Defaults are applied in
// code after decoding, then Validate reports every remaining problem, again all at once, as
// "FIELD.PATH: message" lines (contract.md, `jwtauthz validate`).
//
// Only pkg/server and cmd/jwtauthz import this package: everything below the composition root
// takes its own Options struct, never the generated config types.
package config
