-- +goose Up
-- prober_status (and region_status) count the raw rows of the last 10
-- minutes. check_results' indexes lead with event_id and target_id, so
-- that filter on checked_at alone scanned the whole day's partition, up to
-- tens of millions of rows in the evening. Rows arrive about in checked_at
-- order, which is what a BRIN index needs: a few kilobytes a day, next to
-- nothing per insert, where a B-tree would add a second large index to the
-- write path. It serves any query of the raw rows by time (the README's
-- certificates of the last hour too).
CREATE INDEX check_results_checked_at ON check_results USING brin (checked_at);

-- +goose Down
DROP INDEX check_results_checked_at;
