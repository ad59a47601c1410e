-- +goose Up
-- Fleet (issue 10): every check belongs to a slot, its scheduled time on the
-- target's fixed grid (CheckResult.scheduled_at), and one result per target,
-- region and slot counts, whoever writes it: two probers owning a target
-- during a rebalance, or a prober cut off from Kafka that keeps checking,
-- publish two events of one slot with different event IDs and slightly
-- different started_at, possibly on either side of midnight. check_results'
-- unique key holds checked_at (its partition key), so no index on it can
-- say "one row per slot".
--
-- check_slots is the arbiter instead: one claim per (target_id, region,
-- scheduled_at), taking the event ID that holds the slot. The recorder
-- inserts a batch's claims (ON CONFLICT DO NOTHING) in the transaction that
-- writes the raw rows, before them; an event whose slot another event ID
-- holds is neither stored in check_results nor counted in the rollups (the
-- recorder counts it in sitewatch_recorder_duplicate_slots_total). The first
-- event stored wins; within one batch the smaller event ID. The same event
-- redelivered finds its own claim and stays idempotent through the raw key.
-- Events without scheduled_at (probers older than the field) claim nothing
-- and are stored as before.
--
-- Partitioned by scheduled_at into UTC days (check_slots_pYYYYMMDD) so that
-- two results of one slot always meet in one partition, whatever their
-- checked_at; the recorder creates and drops these partitions with those of
-- check_results, under the same retention. region is '' for events without
-- a region (a prober started without -region).
CREATE TABLE check_slots (
    target_id    text        NOT NULL,
    region       text        NOT NULL,
    scheduled_at timestamptz NOT NULL,
    event_id     uuid        NOT NULL,
    PRIMARY KEY (target_id, region, scheduled_at)
) PARTITION BY RANGE (scheduled_at);

-- The slot of each raw row; NULL for events of probers older than the field.
ALTER TABLE check_results ADD COLUMN scheduled_at timestamptz;

-- Per target, region and UTC hour: checks of each slot once (slot
-- duplicates never reach it), maintained by the recorder in the raw rows'
-- transaction from the rows it inserted, as check_results_hourly is.
-- check_results_hourly stays per target, over every region.
CREATE TABLE check_results_region_hourly (
    target_id            text        NOT NULL,
    region               text        NOT NULL,
    hour                 timestamptz NOT NULL,
    checks               bigint      NOT NULL,
    up                   bigint      NOT NULL,
    down                 bigint      NOT NULL,
    response_time_sum_us bigint      NOT NULL,
    PRIMARY KEY (target_id, region, hour)
);

CREATE INDEX check_results_region_hourly_hour ON check_results_region_hourly (hour);

-- The latest result per target and region, as targets keeps it per target
-- (same columns and rules), so target_region_status reads this small table.
CREATE TABLE target_regions (
    target_id             text        NOT NULL,
    region                text        NOT NULL,
    first_seen            timestamptz NOT NULL,
    last_seen             timestamptz NOT NULL,
    last_event_id         uuid        NOT NULL,
    last_outcome          text        NOT NULL CHECK (last_outcome IN ('up', 'down')),
    last_failure_kind     text,
    last_status_code      integer,
    last_response_time_us bigint      NOT NULL,
    last_error            text,
    last_up_at            timestamptz,
    last_down_at          timestamptz,
    PRIMARY KEY (target_id, region)
);

-- The rows stored before this migration: once, from the raw rows the
-- retention still keeps (older hours have no region breakdown).
INSERT INTO check_results_region_hourly
SELECT target_id, coalesce(prober_region, ''), date_trunc('hour', checked_at, 'UTC'),
       count(*), count(*) FILTER (WHERE outcome = 'up'), count(*) FILTER (WHERE outcome = 'down'),
       sum(response_time_us)
FROM check_results
GROUP BY 1, 2, 3;

INSERT INTO target_regions
SELECT DISTINCT ON (target_id, coalesce(prober_region, ''))
       target_id, coalesce(prober_region, ''),
       min(checked_at) OVER w, max(checked_at) OVER w,
       event_id, outcome, failure_kind, status_code, response_time_us, error,
       max(checked_at) FILTER (WHERE outcome = 'up') OVER w,
       max(checked_at) FILTER (WHERE outcome = 'down') OVER w
FROM check_results
WINDOW w AS (PARTITION BY target_id, coalesce(prober_region, ''))
ORDER BY target_id, coalesce(prober_region, ''), checked_at DESC, event_id DESC;

-- +goose Down
DROP TABLE target_regions;
DROP TABLE check_results_region_hourly;
ALTER TABLE check_results DROP COLUMN scheduled_at;
DROP TABLE check_slots;
