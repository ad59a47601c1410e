-- +goose Up
-- A target configured but never checked was pending forever: the
-- freshness of a region counted only targets with a check somewhere
-- (target_region_freshness joined targets), so a target no prober ever
-- took up (its region has no prober, every prober of it died before its
-- first slot, a typo in regions) looked like one about to be checked. It is
-- now stale once stale_after_intervals() intervals passed since
-- configured_at, in each region that applies: its configured regions, or,
-- for a target on every region, every region a prober was ever seen in
-- (probers; '' before any prober checked anything). target_status takes
-- stale_since and quiet_regions for it too. Columns are unchanged.

CREATE OR REPLACE VIEW target_region_freshness AS
WITH applies AS (
    SELECT c.target_id, reg AS region, c.configured_at, NULL::timestamptz AS fallback_seen
    FROM target_config c CROSS JOIN LATERAL unnest(c.regions) AS reg
    WHERE c.removed_at IS NULL AND cardinality(c.regions) > 0
    UNION ALL
    SELECT r.target_id, r.region, NULL, NULL
    FROM target_regions r LEFT JOIN target_config c USING (target_id)
    WHERE c.target_id IS NULL OR (c.removed_at IS NULL AND cardinality(c.regions) = 0)
    UNION ALL
    -- A target checked only before target_regions existed (its raw rows
    -- gone by retention before migration 00006): its last check anywhere.
    SELECT t.target_id, '', NULL, t.last_seen
    FROM targets t LEFT JOIN target_config c USING (target_id)
    WHERE NOT EXISTS (SELECT FROM target_regions r WHERE r.target_id = t.target_id)
      AND (c.target_id IS NULL OR (c.removed_at IS NULL AND cardinality(c.regions) = 0))
    UNION ALL
    -- A configured target on every region that no prober ever checked:
    -- every region a prober was ever seen in, or '' before any was.
    SELECT c.target_id, p.region, c.configured_at, NULL
    FROM target_config c
    CROSS JOIN (SELECT DISTINCT region FROM probers
                UNION ALL
                SELECT '' WHERE NOT EXISTS (SELECT FROM probers)) p
    WHERE c.removed_at IS NULL AND cardinality(c.regions) = 0
      AND NOT EXISTS (SELECT FROM targets t WHERE t.target_id = c.target_id)
), w AS (
    SELECT a.target_id, a.region, coalesce(r.last_seen, a.fallback_seen) AS last_seen, c.configured_at,
           coalesce(c.interval_us, r.check_interval_us, t.check_interval_us, default_check_interval_us()) AS interval_us,
           CASE WHEN c.interval_us IS NOT NULL THEN 'config'
                WHEN coalesce(r.check_interval_us, t.check_interval_us) IS NOT NULL THEN 'event'
                ELSE 'default' END AS interval_source
    FROM applies a
    LEFT JOIN targets t ON t.target_id = a.target_id
    LEFT JOIN target_regions r ON r.target_id = a.target_id AND r.region = a.region
    LEFT JOIN target_config c ON c.target_id = a.target_id
)
SELECT target_id, region, last_seen AS last_checked_at,
       make_interval(secs => interval_us / 1e6) AS check_interval,
       interval_source,
       greatest(last_seen, configured_at) + stale_after_intervals() * make_interval(secs => interval_us / 1e6) AS stale_since,
       greatest(last_seen, configured_at) + stale_after_intervals() * make_interval(secs => interval_us / 1e6) < now() AS stale
FROM w;

CREATE OR REPLACE VIEW target_status AS
WITH quiet AS (
    SELECT target_id,
           min(stale_since) AS stale_since,
           array_agg(region ORDER BY region) AS quiet_regions
    FROM target_region_freshness
    WHERE stale
    GROUP BY target_id
)
SELECT coalesce(t.target_id, c.target_id) AS target_id,
       coalesce(c.url, t.url) AS url,
       t.last_outcome AS state,
       CASE WHEN t.target_id IS NULL OR t.last_seen < c.configured_at THEN c.configured_at ELSE coalesce(CASE
           WHEN t.last_outcome = 'up' AND t.last_down_at IS NULL THEN t.first_seen
           WHEN t.last_outcome = 'down' AND t.last_up_at IS NULL THEN t.first_seen
           ELSE (SELECT min(r.checked_at) FROM check_results r
                 WHERE r.target_id = t.target_id
                   AND r.checked_at > CASE t.last_outcome WHEN 'up' THEN t.last_down_at
                                                          ELSE t.last_up_at END)
       END, t.last_seen) END AS since,
       t.last_seen AS last_checked_at,
       t.last_status_code,
       round(t.last_response_time_us / 1000.0, 3) AS last_response_time_ms,
       t.last_failure_kind,
       t.last_error,
       t.first_seen,
       CASE WHEN q.target_id IS NOT NULL THEN 'stale'
            WHEN t.target_id IS NULL OR t.last_seen < c.configured_at THEN 'pending'
            ELSE t.last_outcome END AS status,
       q.stale_since,
       q.quiet_regions,
       make_interval(secs => coalesce(c.interval_us, t.check_interval_us, default_check_interval_us()) / 1e6) AS check_interval,
       CASE WHEN c.interval_us IS NOT NULL THEN 'config'
            WHEN t.check_interval_us IS NOT NULL THEN 'event'
            ELSE 'default' END AS interval_source,
       c.configured_at,
       c.regions
FROM targets t
FULL JOIN target_config c ON c.target_id = t.target_id
LEFT JOIN quiet q ON q.target_id = coalesce(t.target_id, c.target_id)
WHERE c.removed_at IS NULL;

-- +goose Down
CREATE OR REPLACE VIEW target_region_freshness AS
WITH applies AS (
    SELECT c.target_id, reg AS region, c.configured_at, NULL::timestamptz AS fallback_seen
    FROM target_config c CROSS JOIN LATERAL unnest(c.regions) AS reg
    WHERE c.removed_at IS NULL AND cardinality(c.regions) > 0
      AND EXISTS (SELECT FROM targets t WHERE t.target_id = c.target_id)
    UNION ALL
    SELECT r.target_id, r.region, NULL, NULL
    FROM target_regions r LEFT JOIN target_config c USING (target_id)
    WHERE c.target_id IS NULL OR (c.removed_at IS NULL AND cardinality(c.regions) = 0)
    UNION ALL
    -- A target checked only before target_regions existed (its raw rows
    -- gone by retention before migration 00006): its last check anywhere.
    SELECT t.target_id, '', NULL, t.last_seen
    FROM targets t LEFT JOIN target_config c USING (target_id)
    WHERE NOT EXISTS (SELECT FROM target_regions r WHERE r.target_id = t.target_id)
      AND (c.target_id IS NULL OR (c.removed_at IS NULL AND cardinality(c.regions) = 0))
), w AS (
    SELECT a.target_id, a.region, coalesce(r.last_seen, a.fallback_seen) AS last_seen, c.configured_at,
           coalesce(c.interval_us, r.check_interval_us, t.check_interval_us, default_check_interval_us()) AS interval_us,
           CASE WHEN c.interval_us IS NOT NULL THEN 'config'
                WHEN coalesce(r.check_interval_us, t.check_interval_us) IS NOT NULL THEN 'event'
                ELSE 'default' END AS interval_source
    FROM applies a
    JOIN targets t ON t.target_id = a.target_id
    LEFT JOIN target_regions r ON r.target_id = a.target_id AND r.region = a.region
    LEFT JOIN target_config c ON c.target_id = a.target_id
)
SELECT target_id, region, last_seen AS last_checked_at,
       make_interval(secs => interval_us / 1e6) AS check_interval,
       interval_source,
       greatest(last_seen, configured_at) + stale_after_intervals() * make_interval(secs => interval_us / 1e6) AS stale_since,
       greatest(last_seen, configured_at) + stale_after_intervals() * make_interval(secs => interval_us / 1e6) < now() AS stale
FROM w;

CREATE OR REPLACE VIEW target_status AS
WITH quiet AS (
    SELECT target_id,
           min(stale_since) AS stale_since,
           array_agg(region ORDER BY region) AS quiet_regions
    FROM target_region_freshness
    WHERE stale
    GROUP BY target_id
)
SELECT coalesce(t.target_id, c.target_id) AS target_id,
       coalesce(c.url, t.url) AS url,
       t.last_outcome AS state,
       CASE WHEN t.target_id IS NULL OR t.last_seen < c.configured_at THEN c.configured_at ELSE coalesce(CASE
           WHEN t.last_outcome = 'up' AND t.last_down_at IS NULL THEN t.first_seen
           WHEN t.last_outcome = 'down' AND t.last_up_at IS NULL THEN t.first_seen
           ELSE (SELECT min(r.checked_at) FROM check_results r
                 WHERE r.target_id = t.target_id
                   AND r.checked_at > CASE t.last_outcome WHEN 'up' THEN t.last_down_at
                                                          ELSE t.last_up_at END)
       END, t.last_seen) END AS since,
       t.last_seen AS last_checked_at,
       t.last_status_code,
       round(t.last_response_time_us / 1000.0, 3) AS last_response_time_ms,
       t.last_failure_kind,
       t.last_error,
       t.first_seen,
       CASE WHEN t.target_id IS NULL THEN 'pending'
            WHEN q.target_id IS NOT NULL THEN 'stale'
            WHEN t.last_seen < c.configured_at THEN 'pending'
            ELSE t.last_outcome END AS status,
       q.stale_since,
       q.quiet_regions,
       make_interval(secs => coalesce(c.interval_us, t.check_interval_us, default_check_interval_us()) / 1e6) AS check_interval,
       CASE WHEN c.interval_us IS NOT NULL THEN 'config'
            WHEN t.check_interval_us IS NOT NULL THEN 'event'
            ELSE 'default' END AS interval_source,
       c.configured_at,
       c.regions
FROM targets t
FULL JOIN target_config c ON c.target_id = t.target_id
LEFT JOIN quiet q ON q.target_id = t.target_id
WHERE c.removed_at IS NULL;

