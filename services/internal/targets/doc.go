// Package targets reads and validates the targets file (docs/design.md, "Targets
// file"): a YAML document with optional `defaults` and a list of `targets`.
//
// Decoding is strict: an unknown key is an error, like a bad value. All the
// errors of a file are reported at once, each naming the file, the line, the
// target (by ID, or by position when it has none) and the field, so one run
// of `prober -validate` shows everything to fix.
package targets
