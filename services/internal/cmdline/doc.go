// Package cmdline parses the command lines of sitewatch's commands so that
// one run reports every bad flag, not only the first (package flag stops at
// the first).
package cmdline
