// Package cmdline holds what sitewatch's commands share about their command
// lines: a main that runs run(ctx, args, getenv, stdout, stderr) until
// SIGINT or SIGTERM, and flag parsing that reports every bad flag at once,
// not only the first (package flag stops at the first).
package cmdline
