-- +goose Up
-- Issue 11: what the alerter (services/alerter) needs to resume exactly
-- where it stopped. It consumes check-results in a group, but keeps its
-- offsets here, written in the same transaction as the incidents,
-- transitions and outbox rows a batch of events caused and the targets'
-- evaluator state after them: a killed alerter, or the next owner of a
-- partition, loads the state and seeks to the offset that belong together,
-- and so reaches the same decisions, never the same transition twice.

-- The evaluator's state per target (services/alerter/internal/evaluate
-- State, as JSON): each region's window of recent checks and the open
-- incidents.
CREATE TABLE alerter_state (
    target_id  text        PRIMARY KEY,
    state      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The next offset to evaluate per partition of the topic. A batch updates
-- a partition's row only from the offset its alerter loaded or last wrote:
-- an alerter that lost the partition without knowing (a long pause) finds
-- the row moved on, and its batch is rolled back.
CREATE TABLE alerter_offsets (
    topic       text        NOT NULL,
    partition   integer     NOT NULL CHECK (partition >= 0),
    next_offset bigint      NOT NULL CHECK (next_offset >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);

-- +goose Down
DROP TABLE alerter_offsets;
DROP TABLE alerter_state;
