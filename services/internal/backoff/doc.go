// Package backoff is how sitewatch services retry what fails for a while (a
// database starting, Kafka or the registry unreachable): exponential waits
// with jitter, on github.com/sethvargo/go-retry, with each failure reported
// to the caller for its logs and metrics.
package backoff
