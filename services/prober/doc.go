// Command prober checks the websites of a targets file on a schedule and
// publishes each result as a CheckResult event to Kafka.
//
//	prober -config targets.yaml            run
//	prober -config targets.yaml -validate  check the file, exit 0 or 1
//	prober -fleet -region R -instance I    check region R's share of the targets topic
//	prober targets apply targets.yaml      publish the file's difference to the targets topic
//	prober targets list                    print what the targets topic holds
//
// Kafka and the Schema Registry come from the KAFKA_* and SCHEMA_REGISTRY_*
// environment variables (docs/design.md). SIGHUP, or a change of the file,
// reloads the targets; SIGINT/SIGTERM stop scheduling, let running checks
// end, flush and exit 0. In fleet mode (internal/fleet) the targets come
// from the targets topic instead, and SIGTERM also hands them over to the
// region's other probers.
package main
