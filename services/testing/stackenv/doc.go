// Package stackenv serves the tools that run against the development stack
// (tests, benchmarks): its variables, from the environment or from the
// .stack/env file that `task stack:up` writes, and the removal of what a run
// created in the stack's Kafka and registry.
package stackenv
