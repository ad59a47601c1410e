-- +goose Up
-- The outbox sender claims a row only when no earlier transition of the
-- same incident and channel is still pending, and the no-data pass reads
-- the channels told about its open incidents: both look rows up by
-- incident (and channel), which without this index scanned the whole
-- table, delivered history included, once per candidate row.
CREATE INDEX notification_outbox_incident ON notification_outbox (incident_id, channel, seq);

-- +goose Down
DROP INDEX notification_outbox_incident;
