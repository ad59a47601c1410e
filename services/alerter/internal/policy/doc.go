// Package policy gives the alerter each target's alert policy, the
// maintenance windows that cover it and the channels by name: from the
// targets file (file mode, reloaded when it changes), or from the compacted
// `targets` topic with the channels and maintenance windows of the file
// (fleet mode). A Set is an immutable snapshot; a Source holds the current
// one.
package policy
