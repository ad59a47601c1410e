-- +goose Up
-- Views per region (issue 10). region is '' for events of probers started
-- without -region.

-- Current state per target and region, as target_status per target: the
-- latest result (kept in target_regions) and since when the target has been
-- in that state in that region.
CREATE VIEW target_region_status AS
SELECT r.target_id,
       r.region,
       r.last_outcome AS state,
       coalesce(CASE
           WHEN r.last_outcome = 'up' AND r.last_down_at IS NULL THEN r.first_seen
           WHEN r.last_outcome = 'down' AND r.last_up_at IS NULL THEN r.first_seen
           ELSE (SELECT min(c.checked_at) FROM check_results c
                 WHERE c.target_id = r.target_id
                   AND coalesce(c.prober_region, '') = r.region
                   AND c.checked_at > CASE r.last_outcome WHEN 'up' THEN r.last_down_at
                                                          ELSE r.last_up_at END)
       END, r.last_seen) AS since,
       r.last_seen AS last_checked_at,
       r.last_status_code,
       round(r.last_response_time_us / 1000.0, 3) AS last_response_time_ms,
       r.last_failure_kind,
       r.last_error,
       r.first_seen
FROM target_regions r;

-- Per target: how many regions check it, how many see it down now, which.
CREATE VIEW target_regions_down AS
SELECT target_id,
       count(*) AS regions,
       count(*) FILTER (WHERE last_outcome = 'down') AS regions_down,
       coalesce(array_agg(region ORDER BY region) FILTER (WHERE last_outcome = 'down'), '{}') AS down_regions
FROM target_regions
GROUP BY target_id;

-- Per target, region and UTC day, from the region rollup (never the raw
-- events); each slot counted once.
CREATE VIEW availability_region_daily AS
SELECT target_id, region, day, checks, up, down,
       round(100.0 * up / checks, 3) AS availability_pct,
       round(sum_us / 1000.0 / checks, 3) AS avg_ms
FROM (
    SELECT target_id, region, (hour AT TIME ZONE 'UTC')::date AS day,
           sum(checks) AS checks, sum(up) AS up, sum(down) AS down,
           sum(response_time_sum_us) AS sum_us
    FROM check_results_region_hourly
    GROUP BY target_id, region, day
) AS d;

-- +goose Down
DROP VIEW availability_region_daily;
DROP VIEW target_regions_down;
DROP VIEW target_region_status;
