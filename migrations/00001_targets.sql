-- +goose Up
-- One row per target ID, kept by the recorder from the events it stores, in
-- the same transaction as the raw rows: the URL and method of the latest
-- event, when the target was first and last checked (the events' times, so a
-- replay rebuilds the same row), and the latest result, which makes
-- target_status a scan of this small table instead of the raw events.
CREATE TABLE targets (
    target_id             text        PRIMARY KEY,
    url                   text        NOT NULL,
    method                text        NOT NULL,
    first_seen            timestamptz NOT NULL,
    last_seen             timestamptz NOT NULL,
    -- The latest event (greatest checked_at, then event_id).
    last_event_id         uuid        NOT NULL,
    last_outcome          text        NOT NULL CHECK (last_outcome IN ('up', 'down')),
    last_failure_kind     text,
    last_status_code      integer,
    last_response_time_us bigint      NOT NULL,
    last_error            text,
    -- The latest up and down events; with them target_status finds when the
    -- current state began without scanning the target's history.
    last_up_at            timestamptz,
    last_down_at          timestamptz
);

-- +goose Down
DROP TABLE targets;
