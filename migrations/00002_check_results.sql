-- +goose Up
-- Raw events, one row per CheckResult, range-partitioned by checked_at (the
-- event's started_at) into UTC days named check_results_pYYYYMMDD. The
-- recorder creates the partitions ahead of time and on demand for late events,
-- and drops whole partitions past the retention. There is deliberately no
-- DEFAULT partition: it would swallow late events and then block creating the
-- partition they belong to.
--
-- Durations are microseconds (_us); a phase that did not happen is NULL.
CREATE TABLE check_results (
    event_id            uuid        NOT NULL,
    target_id           text        NOT NULL,
    checked_at          timestamptz NOT NULL,
    outcome             text        NOT NULL CHECK (outcome IN ('up', 'down')),
    failure_kind        text        CHECK (failure_kind IN ('dns', 'connect', 'tls', 'timeout',
                                                            'http_status', 'content_mismatch', 'other')),
    response_time_us    bigint      NOT NULL,
    dns_us              bigint,
    connect_us          bigint,
    tls_handshake_us    bigint,
    ttfb_us             bigint,
    status_code         integer,    -- NULL when no response arrived
    bytes_read          bigint      NOT NULL,
    body_truncated      boolean     NOT NULL,
    content_pattern     text,       -- NULL when the target has no pattern
    content_matched     boolean,
    tls_cert_expires_at timestamptz,
    redirects           integer     NOT NULL,
    error               text,
    prober_instance     text,
    prober_region       text,
    -- The event ID is the idempotency key; checked_at is part of the key
    -- because a partitioned table's unique keys must hold the partition key
    -- (an event's time never changes).
    PRIMARY KEY (event_id, checked_at)
) PARTITION BY RANGE (checked_at);

-- A target's history and "first event after time T" (target_status). The only
-- other index: every index costs every insert.
CREATE INDEX check_results_target_time ON check_results (target_id, checked_at);

-- +goose Down
DROP TABLE check_results;
