// Command recorderbench measures the recorder against the real stack (the
// variables of .stack/env): it produces a backlog of events into a fresh
// topic, drains it with the recorder's consumer and store (in process, as
// `recorder` wires them) into a fresh database and checks the rollups are
// exact; as anchors, it COPYs the same rows into a table without keys and
// into one keyed, indexed and partitioned like check_results, in the same
// (scratch) database; then it produces at a steady rate and measures the
// delay from each event's started_at to the commit of the transaction that
// stored it.
//
//	go run ./services/recorder/cmd/recorderbench -events 1000000 -rate 1000 -rate-for 30s
//
// It prints a table of figures and leaves nothing behind (-keep keeps the
// database and topics).
package main
