// Package fleet is the prober's side of the targets topic (docs/design.md,
// "Fleet"): `prober targets apply FILE` publishes the difference between a
// targets file and what the topic holds, `prober targets list` prints what
// it holds. Fleet mode (probers taking their targets from the topic) comes
// here next.
package fleet
