-- +goose Up
-- Issue 13: what is configured, what went stale, what was removed.
--
-- target_config is the projection of the compacted `targets` topic, kept by
-- the recorder's second consumer: one row per target ID ever configured.
-- It is a table of its own rather than more columns of targets: targets is
-- the projection of the check results (its event columns are NOT NULL, a
-- configured but never checked target has none), and the two are rebuilt
-- from different topics, so a replay of one never touches the other.
--
-- No secret is stored: url has its password or token replaced by "xxxxx"
-- (as in the events), of the headers only the names are kept, of the body
-- only whether there is one. Times are the Kafka records' timestamps, never
-- now(), so a replay of the topic rebuilds the same rows.
CREATE TABLE target_config (
    target_id        text        PRIMARY KEY,
    url              text        NOT NULL,
    method           text        NOT NULL,
    interval_us      bigint      NOT NULL CHECK (interval_us > 0),
    timeout_us       bigint      NOT NULL,
    header_names     text[]      NOT NULL,
    has_body         boolean     NOT NULL,
    expect_status    text[]      NOT NULL, -- ranges such as '200-399'
    pattern          text,                 -- NULL: no content check
    follow_redirects boolean     NOT NULL,
    tls_skip_verify  boolean     NOT NULL,
    max_body_bytes   bigint      NOT NULL,
    regions          text[]      NOT NULL, -- empty: every region
    labels           jsonb       NOT NULL,
    -- The record that configured the target (again, after a removal), the
    -- latest record that set it, and the tombstone that removed it (NULL
    -- while configured; a later value clears it).
    configured_at    timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    removed_at       timestamptz
);

-- The next offset of the targets topic to apply, per partition, written in
-- the transaction that applies the records before it: each record takes
-- effect once, whichever recorder reads it, whatever Kafka redelivers.
CREATE TABLE target_config_offsets (
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint  NOT NULL,
    PRIMARY KEY (topic, partition)
);

-- The interval carried by the latest event (CheckResult.target.interval);
-- NULL for events of probers older than the field.
ALTER TABLE targets ADD COLUMN check_interval_us bigint;
ALTER TABLE target_regions ADD COLUMN check_interval_us bigint;

-- Every prober instance ever seen, per region, with its first and last
-- check: kept by the recorder in the raw rows' transaction, so that a dead
-- prober stays listed (its last check getting older) instead of vanishing.
-- region and instance are '' for events without them.
CREATE TABLE probers (
    region     text        NOT NULL,
    instance   text        NOT NULL,
    first_seen timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL,
    PRIMARY KEY (region, instance)
);

INSERT INTO probers
SELECT coalesce(prober_region, ''), coalesce(prober_instance, ''), min(checked_at), max(checked_at)
FROM check_results
GROUP BY 1, 2;

-- The interval assumed for a target that has no configuration row and
-- whose events predate CheckResult.target.interval: the targets file's
-- built-in default (60s), which such probers used unless told otherwise.
-- +goose StatementBegin
CREATE FUNCTION default_check_interval_us() RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 60000000::bigint $$;
-- +goose StatementEnd

-- A target is stale in a region after 3 intervals without a check there.
-- +goose StatementBegin
CREATE FUNCTION stale_after_intervals() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 3 $$;
-- +goose StatementEnd

-- Per checked, not removed target and region that applies: the configured
-- regions when the target names some (a configured region that no prober
-- ever checked counts from configured_at), else every region that checked
-- it. The interval is the configured one, else the latest event's (file
-- mode), else default_check_interval_us(); interval_source says which.
CREATE VIEW target_region_freshness AS
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
    SELECT a.target_id, a.region, coalesce(r.last_seen, a.fallback_seen) AS last_seen, a.configured_at,
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
       coalesce(last_seen, configured_at) + stale_after_intervals() * make_interval(secs => interval_us / 1e6) AS stale_since,
       coalesce(last_seen, configured_at) + stale_after_intervals() * make_interval(secs => interval_us / 1e6) < now() AS stale
FROM w;

-- target_status keeps its columns (state stays the last check's outcome,
-- what current_outages and dashboards select on) and gains:
--   status: pending (configured, never checked), up / down (the last
--           check), or stale (some region that applies had no check for
--           more than 3 intervals);
--   stale_since, quiet_regions: since when, and which regions went quiet;
--   check_interval, interval_source, configured_at, regions.
-- Targets configured but never checked appear (state NULL, since =
-- configured_at); removed targets do not.
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
       CASE WHEN t.target_id IS NULL THEN c.configured_at ELSE coalesce(CASE
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

-- current_outages: as before (the last check failed), removed targets gone
-- through target_status; status says whether the outage is still observed
-- (down) or nobody checks any more (stale).
CREATE OR REPLACE VIEW current_outages AS
SELECT target_id, url, since AS down_since, now() - since AS duration,
       last_checked_at, last_status_code, last_failure_kind, last_error,
       status
FROM target_status
WHERE state = 'down';

-- target_region_status: removed targets gone; stale per region added.
CREATE OR REPLACE VIEW target_region_status AS
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
       r.first_seen,
       coalesce(f.stale, false) AS stale,
       f.stale_since,
       f.check_interval
FROM target_regions r
LEFT JOIN target_region_freshness f ON f.target_id = r.target_id AND f.region = r.region
WHERE NOT EXISTS (SELECT FROM target_config x WHERE x.target_id = r.target_id AND x.removed_at IS NOT NULL);

CREATE OR REPLACE VIEW target_regions_down AS
SELECT target_id,
       count(*) AS regions,
       count(*) FILTER (WHERE last_outcome = 'down') AS regions_down,
       coalesce(array_agg(region ORDER BY region) FILTER (WHERE last_outcome = 'down'), '{}') AS down_regions
FROM target_regions r
WHERE NOT EXISTS (SELECT FROM target_config x WHERE x.target_id = r.target_id AND x.removed_at IS NOT NULL)
GROUP BY target_id;

-- The dashboard views over the rollups leave out removed targets. The views
-- as they were, over every target ever checked, stay as *_all: a removed
-- target's history is still there by ID (and in check_results and the
-- rollup tables). Views that depend on a renamed view follow it, so each
-- is renamed and a filtered view of the old name put in its place.
ALTER VIEW availability_hourly RENAME TO availability_hourly_all;
ALTER VIEW availability_daily RENAME TO availability_daily_all;
ALTER VIEW target_summary_7d RENAME TO target_summary_7d_all;
ALTER VIEW slowest_targets RENAME TO slowest_targets_all;
ALTER VIEW availability_region_daily RENAME TO availability_region_daily_all;

CREATE VIEW availability_hourly AS
SELECT * FROM availability_hourly_all v
WHERE NOT EXISTS (SELECT FROM target_config x WHERE x.target_id = v.target_id AND x.removed_at IS NOT NULL);
CREATE VIEW availability_daily AS
SELECT * FROM availability_daily_all v
WHERE NOT EXISTS (SELECT FROM target_config x WHERE x.target_id = v.target_id AND x.removed_at IS NOT NULL);
CREATE VIEW target_summary_7d AS
SELECT * FROM target_summary_7d_all v
WHERE NOT EXISTS (SELECT FROM target_config x WHERE x.target_id = v.target_id AND x.removed_at IS NOT NULL);
CREATE VIEW slowest_targets AS
SELECT * FROM slowest_targets_all v
WHERE NOT EXISTS (SELECT FROM target_config x WHERE x.target_id = v.target_id AND x.removed_at IS NOT NULL)
ORDER BY p95_ms DESC NULLS LAST, target_id;
CREATE VIEW availability_region_daily AS
SELECT * FROM availability_region_daily_all v
WHERE NOT EXISTS (SELECT FROM target_config x WHERE x.target_id = v.target_id AND x.removed_at IS NOT NULL);

-- Removed targets: when, and what was last known of them.
CREATE VIEW removed_targets AS
SELECT c.target_id, c.url, c.configured_at, c.removed_at,
       t.first_seen, t.last_seen AS last_checked_at, t.last_outcome
FROM target_config c
LEFT JOIN targets t ON t.target_id = c.target_id
WHERE c.removed_at IS NOT NULL;

-- Monitoring the monitor: every prober instance ever seen, its last check,
-- how long it has been quiet, and how many targets and checks it did in the
-- last 10 minutes (from the raw rows of that window only).
CREATE VIEW prober_status AS
SELECT p.region, p.instance, p.first_seen, p.last_seen AS last_checked_at,
       now() - p.last_seen AS quiet_for,
       coalesce(r.targets, 0) AS targets_10m,
       coalesce(r.checks, 0) AS checks_10m
FROM probers p
LEFT JOIN (
    SELECT coalesce(prober_region, '') AS region, coalesce(prober_instance, '') AS instance,
           count(DISTINCT target_id) AS targets, count(*) AS checks
    FROM check_results
    WHERE checked_at > now() - interval '10 minutes'
    GROUP BY 1, 2
) r USING (region, instance);

-- Per region: its instances, how many checked in the last 10 minutes, and
-- the region's last check. A region with active_10m = 0 is blind.
CREATE VIEW region_status AS
SELECT region,
       count(*) AS instances,
       count(*) FILTER (WHERE checks_10m > 0) AS active_10m,
       max(last_checked_at) AS last_checked_at,
       now() - max(last_checked_at) AS quiet_for
FROM prober_status
GROUP BY region;

-- +goose Down
DROP VIEW region_status;
DROP VIEW prober_status;
DROP VIEW removed_targets;
DROP VIEW availability_region_daily;
DROP VIEW slowest_targets;
DROP VIEW target_summary_7d;
DROP VIEW availability_daily;
DROP VIEW availability_hourly;
ALTER VIEW availability_region_daily_all RENAME TO availability_region_daily;
ALTER VIEW slowest_targets_all RENAME TO slowest_targets;
ALTER VIEW target_summary_7d_all RENAME TO target_summary_7d;
ALTER VIEW availability_daily_all RENAME TO availability_daily;
ALTER VIEW availability_hourly_all RENAME TO availability_hourly;
DROP VIEW target_regions_down;
DROP VIEW target_region_status;
DROP VIEW current_outages;
DROP VIEW target_status;
DROP VIEW target_region_freshness;
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
CREATE VIEW current_outages AS
SELECT target_id, url, since AS down_since, now() - since AS duration,
       last_checked_at, last_status_code, last_failure_kind, last_error
FROM target_status
WHERE state = 'down';
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
CREATE VIEW target_regions_down AS
SELECT target_id,
       count(*) AS regions,
       count(*) FILTER (WHERE last_outcome = 'down') AS regions_down,
       coalesce(array_agg(region ORDER BY region) FILTER (WHERE last_outcome = 'down'), '{}') AS down_regions
FROM target_regions
GROUP BY target_id;
DROP FUNCTION stale_after_intervals();
DROP FUNCTION default_check_interval_us();
DROP TABLE probers;
ALTER TABLE target_regions DROP COLUMN check_interval_us;
ALTER TABLE targets DROP COLUMN check_interval_us;
DROP TABLE target_config_offsets;
DROP TABLE target_config;
