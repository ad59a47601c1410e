// Package query reads what the web pages, the API and the badges show from
// the recorder's and the alerter's views and rollups: read-only SQL through
// pgx, every value from a request passed as a parameter, never spliced into
// the text. Periods longer than a day come from check_results_hourly (and
// the views over it); the raw table check_results is read only for the last
// 24 hours (phase timings, recent failures, certificate expiry), where its
// (target_id, checked_at) index and daily partitions keep the reads small.
package query
