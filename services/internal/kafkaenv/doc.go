// Package kafkaenv builds the Kafka and Schema Registry clients of every
// sitewatch component from the environment variables fixed in the design
// (KAFKA_*, SCHEMA_REGISTRY_*), so that probers and recorders connect to a
// local stack and to a managed service (TLS, SASL, registry basic auth) alike.
// It also names what is named after a topic: its schema subject and its
// dead-letter topic.
package kafkaenv
