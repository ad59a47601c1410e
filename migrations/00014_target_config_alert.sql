-- +goose Up
-- Issue 11 (alerts), issue 13 (the configuration is a projection): the
-- target's alert policy, as the targets topic carries it (AlertPolicy), with
-- the defaults applied. NULL: the target's alerts are off, or its record
-- came from a producer older than the policy. The policy holds no secret:
-- notify names the alerter's channels, whose settings are not on the topic.
-- Keys as in the targets file, e.g.
--   {"failure_threshold": 3, "failure_window": 3, "success_threshold": 2,
--    "regions": 1, "reminder_interval_seconds": 0, "tls_expiry_days": 14,
--    "no_data": true, "notify": ["ops-hook"]}
-- with "regions": "all" when every region must agree.
ALTER TABLE target_config ADD COLUMN alert jsonb;

-- +goose Down
ALTER TABLE target_config DROP COLUMN alert;
