-- +goose Up
-- Dashboard views. Times are UTC; durations in milliseconds (_ms) with
-- microsecond precision; availability in percent of checks that were up.

-- Current state per target: the latest result (kept in targets) and since
-- when the target has been in that state: the first event after its latest
-- event of the other state, found through check_results (target_id,
-- checked_at), scanning only partitions from that time on.
CREATE VIEW target_status AS
SELECT t.target_id,
       t.url,
       t.last_outcome AS state,
       coalesce(CASE
           WHEN t.last_outcome = 'up' AND t.last_down_at IS NULL THEN t.first_seen
           WHEN t.last_outcome = 'down' AND t.last_up_at IS NULL THEN t.first_seen
           ELSE (SELECT min(c.checked_at) FROM check_results c
                 WHERE c.target_id = t.target_id
                   AND c.checked_at > CASE t.last_outcome WHEN 'up' THEN t.last_down_at
                                                          ELSE t.last_up_at END)
       END, t.last_seen) AS since,
       t.last_seen AS last_checked_at,
       t.last_status_code,
       round(t.last_response_time_us / 1000.0, 3) AS last_response_time_ms,
       t.last_failure_kind,
       t.last_error,
       t.first_seen
FROM targets t;

-- Targets down now, and for how long.
CREATE VIEW current_outages AS
SELECT target_id, url, since AS down_since, now() - since AS duration,
       last_checked_at, last_status_code, last_failure_kind, last_error
FROM target_status
WHERE state = 'down';

-- Per target and hour, with the percentiles computed.
CREATE VIEW availability_hourly AS
SELECT target_id, hour, checks, up, down,
       round(100.0 * up / checks, 3) AS availability_pct,
       round(response_time_sum_us / 1000.0 / checks, 3) AS avg_ms,
       round(response_time_min_us / 1000.0, 3) AS min_ms,
       round(response_time_max_us / 1000.0, 3) AS max_ms,
       round((latency_quantile_us(latency_histogram, 0.50, response_time_min_us, response_time_max_us) / 1000)::numeric, 3) AS p50_ms,
       round((latency_quantile_us(latency_histogram, 0.95, response_time_min_us, response_time_max_us) / 1000)::numeric, 3) AS p95_ms,
       round((latency_quantile_us(latency_histogram, 0.99, response_time_min_us, response_time_max_us) / 1000)::numeric, 3) AS p99_ms,
       failures_dns, failures_connect, failures_tls, failures_timeout,
       failures_http_status, failures_content_mismatch, failures_other
FROM check_results_hourly;

-- Per target and UTC day, from the hourly rollup (never the raw events).
-- The histograms are summed bucket by bucket as 29 plain sums, six times
-- faster than the latency_histogram_sum aggregate (a PL/pgSQL call a row).
CREATE VIEW availability_daily AS
SELECT target_id, day, checks, up, down,
       round(100.0 * up / checks, 3) AS availability_pct,
       round(sum_us / 1000.0 / checks, 3) AS avg_ms,
       round(min_us / 1000.0, 3) AS min_ms,
       round(max_us / 1000.0, 3) AS max_ms,
       round((latency_quantile_us(histogram, 0.50, min_us, max_us) / 1000)::numeric, 3) AS p50_ms,
       round((latency_quantile_us(histogram, 0.95, min_us, max_us) / 1000)::numeric, 3) AS p95_ms,
       round((latency_quantile_us(histogram, 0.99, min_us, max_us) / 1000)::numeric, 3) AS p99_ms,
       failures_dns, failures_connect, failures_tls, failures_timeout,
       failures_http_status, failures_content_mismatch, failures_other
FROM (
    SELECT target_id,
           (hour AT TIME ZONE 'UTC')::date AS day,
           sum(checks) AS checks, sum(up) AS up, sum(down) AS down,
           sum(response_time_sum_us) AS sum_us,
           min(response_time_min_us) AS min_us, max(response_time_max_us) AS max_us,
           sum(failures_dns) AS failures_dns, sum(failures_connect) AS failures_connect,
           sum(failures_tls) AS failures_tls, sum(failures_timeout) AS failures_timeout,
           sum(failures_http_status) AS failures_http_status,
           sum(failures_content_mismatch) AS failures_content_mismatch,
           sum(failures_other) AS failures_other,
           ARRAY[
                 sum(latency_histogram[1]),
                 sum(latency_histogram[2]),
                 sum(latency_histogram[3]),
                 sum(latency_histogram[4]),
                 sum(latency_histogram[5]),
                 sum(latency_histogram[6]),
                 sum(latency_histogram[7]),
                 sum(latency_histogram[8]),
                 sum(latency_histogram[9]),
                 sum(latency_histogram[10]),
                 sum(latency_histogram[11]),
                 sum(latency_histogram[12]),
                 sum(latency_histogram[13]),
                 sum(latency_histogram[14]),
                 sum(latency_histogram[15]),
                 sum(latency_histogram[16]),
                 sum(latency_histogram[17]),
                 sum(latency_histogram[18]),
                 sum(latency_histogram[19]),
                 sum(latency_histogram[20]),
                 sum(latency_histogram[21]),
                 sum(latency_histogram[22]),
                 sum(latency_histogram[23]),
                 sum(latency_histogram[24]),
                 sum(latency_histogram[25]),
                 sum(latency_histogram[26]),
                 sum(latency_histogram[27]),
                 sum(latency_histogram[28]),
                 sum(latency_histogram[29])
             ]::integer[] AS histogram
    FROM check_results_hourly
    GROUP BY target_id, day
) AS d;

-- Per target over the last 7 days (168 hours up to the current one).
CREATE VIEW target_summary_7d AS
SELECT target_id, checks, up, down,
       round(100.0 * up / checks, 3) AS availability_pct,
       round(sum_us / 1000.0 / checks, 3) AS avg_ms,
       round((latency_quantile_us(histogram, 0.50, min_us, max_us) / 1000)::numeric, 3) AS p50_ms,
       round((latency_quantile_us(histogram, 0.95, min_us, max_us) / 1000)::numeric, 3) AS p95_ms,
       round((latency_quantile_us(histogram, 0.99, min_us, max_us) / 1000)::numeric, 3) AS p99_ms
FROM (
    SELECT target_id,
           sum(checks) AS checks, sum(up) AS up, sum(down) AS down,
           sum(response_time_sum_us) AS sum_us,
           min(response_time_min_us) AS min_us, max(response_time_max_us) AS max_us,
           ARRAY[
                 sum(latency_histogram[1]),
                 sum(latency_histogram[2]),
                 sum(latency_histogram[3]),
                 sum(latency_histogram[4]),
                 sum(latency_histogram[5]),
                 sum(latency_histogram[6]),
                 sum(latency_histogram[7]),
                 sum(latency_histogram[8]),
                 sum(latency_histogram[9]),
                 sum(latency_histogram[10]),
                 sum(latency_histogram[11]),
                 sum(latency_histogram[12]),
                 sum(latency_histogram[13]),
                 sum(latency_histogram[14]),
                 sum(latency_histogram[15]),
                 sum(latency_histogram[16]),
                 sum(latency_histogram[17]),
                 sum(latency_histogram[18]),
                 sum(latency_histogram[19]),
                 sum(latency_histogram[20]),
                 sum(latency_histogram[21]),
                 sum(latency_histogram[22]),
                 sum(latency_histogram[23]),
                 sum(latency_histogram[24]),
                 sum(latency_histogram[25]),
                 sum(latency_histogram[26]),
                 sum(latency_histogram[27]),
                 sum(latency_histogram[28]),
                 sum(latency_histogram[29])
             ]::integer[] AS histogram
    FROM check_results_hourly
    WHERE hour > date_trunc('hour', now(), 'UTC') - interval '7 days'
    GROUP BY target_id
) AS w;

-- The slowest targets of the last 7 days, by p95.
CREATE VIEW slowest_targets AS
SELECT target_id, p95_ms, p99_ms, p50_ms, avg_ms, checks, availability_pct
FROM target_summary_7d
ORDER BY p95_ms DESC NULLS LAST, target_id;

-- +goose Down
DROP VIEW slowest_targets;
DROP VIEW target_summary_7d;
DROP VIEW availability_daily;
DROP VIEW availability_hourly;
DROP VIEW current_outages;
DROP VIEW target_status;
