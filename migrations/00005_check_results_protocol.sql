-- +goose Up
-- What the prober saw of the transport and the encoding of each check
-- (CheckResult fields 16 and 17): the HTTP version of the last response
-- ('HTTP/1.1', 'HTTP/2.0'; NULL when no response arrived), and the bytes of
-- the body after its Content-Encoding was undone (bytes_read stays the bytes
-- on the wire). Both are NULL in rows of events from probers older than
-- these fields. Added to the partitioned parent, they reach every partition;
-- nullable without a default, adding them rewrites nothing.
ALTER TABLE check_results
    ADD COLUMN protocol      text,
    ADD COLUMN decoded_bytes bigint;

-- +goose Down
ALTER TABLE check_results
    DROP COLUMN decoded_bytes,
    DROP COLUMN protocol;
