-- +goose Up
-- A configured region that never checked the target counted from
-- configured_at, the record that first configured it: a region added to the
-- list of a target configured days ago was stale at once, with a
-- stale_since of days ago, before its probers had a slot to check it. Such a
-- (target, region) now counts from updated_at, the target's latest change,
-- which is at or after the region was listed. A target edited again before
-- a region's first check waits 3 intervals from that edit: later than
-- needed, never early. updated_at is also what a replay after compaction
-- rebuilds (configured_at is then the latest record's time too). A region
-- that checked the target still counts from its last check (or from
-- configured_at after a re-add), however recent the change. Columns are
-- unchanged.

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
    SELECT a.target_id, a.region, coalesce(r.last_seen, a.fallback_seen) AS last_seen, c.configured_at, c.updated_at,
           coalesce(c.interval_us, r.check_interval_us, t.check_interval_us, default_check_interval_us()) AS interval_us,
           CASE WHEN c.interval_us IS NOT NULL THEN 'config'
                WHEN coalesce(r.check_interval_us, t.check_interval_us) IS NOT NULL THEN 'event'
                ELSE 'default' END AS interval_source
    FROM applies a
    LEFT JOIN targets t ON t.target_id = a.target_id
    LEFT JOIN target_regions r ON r.target_id = a.target_id AND r.region = a.region
    LEFT JOIN target_config c ON c.target_id = a.target_id
), b AS (
    SELECT *, CASE WHEN last_seen IS NULL THEN updated_at ELSE greatest(last_seen, configured_at) END AS base
    FROM w
)
SELECT target_id, region, last_seen AS last_checked_at,
       make_interval(secs => interval_us / 1e6) AS check_interval,
       interval_source,
       base + stale_after_intervals() * make_interval(secs => interval_us / 1e6) AS stale_since,
       base + stale_after_intervals() * make_interval(secs => interval_us / 1e6) < now() AS stale
FROM b;

-- +goose Down
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
