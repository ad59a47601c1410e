-- +goose Up
-- One row per configured target ID, kept by the recorder from the events it
-- stores: the URL last seen and when the target was first and last checked.
CREATE TABLE targets (
    target_id  text        PRIMARY KEY,
    url        text        NOT NULL,
    first_seen timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL
);

-- +goose Down
DROP TABLE targets;
