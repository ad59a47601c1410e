package kafkaenv

// Subject is the Schema Registry subject of topic's record values, by
// Confluent's TopicNameStrategy.
func Subject(topic string) string { return topic + "-value" }

// DLQ is the dead-letter topic of topic, where recorders put the records
// they cannot store.
func DLQ(topic string) string { return topic + ".dlq" }
