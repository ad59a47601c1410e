// Package targetstopic is the `targets` topic (docs/design.md, "Fleet"): a
// compacted topic keyed by target ID whose values are sitewatch.v1.Target
// messages in the Confluent wire format (subject targets-value, PROTOBUF,
// BACKWARD), a tombstone removing a target.
//
// It creates and checks the topic, registers the schema, encodes and decodes
// records, and reads the whole topic to its end; `prober targets apply` and
// `list`, fleet probers and the recorder share it. The partition count is
// fixed at creation: the default partitioner maps a key to a partition by
// its hash modulo the count, so changing the count would move targets
// between partitions, and so between probers, while old values of the same
// keys stay behind in their old partitions.
package targetstopic
