// Package targets reads and validates the targets file (docs/design.md, "Targets
// file"): a YAML document with optional `defaults` and a list of `targets`,
// and the alerting sections `channels` and `maintenance` with each target's
// `alert` policy ("Alerting sections").
//
// Decoding is strict: an unknown key is an error, like a bad value. All the
// errors of a file are reported at once, each naming the file, the line, the
// target (by ID, or by position when it has none; a channel or maintenance
// window by name) and the field, so one run of `prober -validate` shows
// everything to fix.
//
// One parser serves the prober, `prober targets apply` and the alerter.
// Channel secrets (`${VAR}`) are checked for syntax only; the alerter
// resolves them with File.ResolveSecrets, and no error or formatted value
// shows one.
package targets
