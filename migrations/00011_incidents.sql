-- +goose Up
-- Issue 11: incidents, their transitions and the notification outbox, kept
-- by the alerter (services/alerter). The alerter is a projection of the
-- check-results topic: every row here follows from the events and the
-- policy, so a replay reaches the same rows.

-- One row per incident. incident_id is deterministic (derived from the
-- target, the kind, the region for region-wide incidents, and the first
-- failing check), so whatever Kafka redelivers and whichever alerter
-- evaluates it, the same incident gets the same ID and is inserted once.
CREATE TABLE incidents (
    incident_id        text        PRIMARY KEY,
    -- NULL only for a region-wide "no data" incident (every prober of a
    -- region went quiet: one incident for the region, not one per target).
    target_id          text,
    kind               text        NOT NULL CHECK (kind IN ('down', 'tls_expiry', 'no_data')),
    -- The region of a region-wide incident; NULL otherwise.
    region             text,
    -- The first failing check (its check time and event ID).
    started_at         timestamptz NOT NULL,
    first_event_id     text        NOT NULL,
    -- The check that confirmed the incident (the policy's thresholds met).
    confirmed_at       timestamptz NOT NULL,
    -- The check that resolved it; NULL while open.
    resolved_at        timestamptz,
    -- The regions that saw the failure.
    regions            text[]      NOT NULL,
    first_failure_kind text        NOT NULL,
    first_error        text        NOT NULL,
    last_failure_kind  text        NOT NULL,
    last_error         text        NOT NULL,
    last_failure_at    timestamptz NOT NULL,
    -- Confirmed inside a maintenance window: recorded, not notified.
    maintenance        text,
    CHECK (target_id IS NOT NULL OR (kind = 'no_data' AND region IS NOT NULL)),
    CHECK (resolved_at IS NULL OR resolved_at >= confirmed_at),
    CHECK (confirmed_at >= started_at)
);
-- At most one open incident per target, kind and region.
CREATE UNIQUE INDEX incidents_open ON incidents (coalesce(target_id, ''), kind, coalesce(region, ''))
    WHERE resolved_at IS NULL;
CREATE INDEX incidents_target ON incidents (target_id, started_at DESC);

-- The timeline of each incident: opened (seq 0), reminders, resolved.
CREATE TABLE incident_transitions (
    incident_id text        NOT NULL REFERENCES incidents (incident_id),
    seq         integer     NOT NULL CHECK (seq >= 0),
    transition  text        NOT NULL CHECK (transition IN ('opened', 'reminder', 'resolved')),
    -- The check time of the event that caused the transition.
    at          timestamptz NOT NULL,
    event_id    text,
    regions     text[]      NOT NULL,
    -- Why no notification was queued, when none was: the name of the
    -- maintenance window, or 'no channels'.
    suppressed  text,
    PRIMARY KEY (incident_id, seq)
);

-- One row per transition and channel, written in the transition's
-- transaction; senders claim, deliver (at least once) and mark them.
CREATE TABLE notification_outbox (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Stable per incident, transition and channel: the receiver's
    -- deduplication key (Idempotency-Key header, PagerDuty dedup_key with
    -- the incident ID, Alertmanager label).
    idempotency_key text        NOT NULL UNIQUE,
    incident_id     text        NOT NULL,
    seq             integer     NOT NULL,
    channel         text        NOT NULL,
    channel_type    text        NOT NULL,
    -- The notification (services/alerter/internal/notify.Notification).
    payload         jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- A sender's lease on the row while it delivers.
    claimed_by      text,
    claimed_until   timestamptz,
    delivered_at    timestamptz,
    last_error      text,
    -- Given up after the retry budget; kept for an operator to see.
    failed_at       timestamptz,
    FOREIGN KEY (incident_id, seq) REFERENCES incident_transitions (incident_id, seq)
);
CREATE INDEX notification_outbox_pending ON notification_outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;

CREATE VIEW open_incidents AS
SELECT incident_id, target_id, kind, region, started_at, first_event_id, confirmed_at, regions,
       first_failure_kind, first_error, last_failure_kind, last_error, last_failure_at, maintenance,
       now() - started_at AS open_for
FROM incidents
WHERE resolved_at IS NULL;

CREATE VIEW incident_history AS
SELECT incident_id, target_id, kind, region, started_at, confirmed_at, resolved_at, regions,
       first_failure_kind, first_error, last_failure_kind, last_error, maintenance,
       confirmed_at - started_at AS time_to_detect,
       resolved_at - started_at  AS time_to_resolve
FROM incidents;

-- +goose Down
DROP VIEW incident_history;
DROP VIEW open_incidents;
DROP TABLE notification_outbox;
DROP TABLE incident_transitions;
DROP TABLE incidents;
