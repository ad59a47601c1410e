// Package shutdown holds what sitewatch services share about stopping:
// after SIGTERM, the work in hand gets a bounded grace period to finish.
package shutdown
