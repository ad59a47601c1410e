-- +goose Up
-- Latency histogram: fixed buckets whose lower bounds, in microseconds, are
-- latency_bounds_us(); bucket i (1-based) counts response times in
-- [bounds[i], bounds[i+1]), the last one everything from 60 s up. The bounds
-- grow by about 1.5x, so a percentile interpolated within its bucket is off by
-- at most the bucket's width (one third of its value), and less where the
-- observed min/max narrow the bucket. Changing the bounds needs a new
-- migration that converts the stored histograms.
-- +goose StatementBegin
CREATE FUNCTION latency_bounds_us() RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '{0,1000,2000,3000,5000,7000,10000,15000,20000,30000,50000,70000,
             100000,150000,200000,300000,500000,700000,
             1000000,1500000,2000000,3000000,5000000,7000000,
             10000000,15000000,20000000,30000000,60000000}'::bigint[]
$$;
-- +goose StatementEnd

-- Element-wise sum of two histograms (the rollup upsert and the aggregate
-- below); a missing element counts as zero. PL/pgSQL: about 6 us a call
-- where the same in SQL (unnest ... array_agg) takes about 35 us.
-- +goose StatementBegin
CREATE FUNCTION latency_histogram_add(a integer[], b integer[]) RETURNS integer[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    r integer[] := a;
BEGIN
    FOR i IN 1 .. coalesce(array_length(b, 1), 0) LOOP
        r[i] := coalesce(r[i], 0) + b[i];
    END LOOP;
    RETURN r;
END
$$;
-- +goose StatementEnd

-- latency_histogram_sum(histogram) adds the histograms of several hours.
CREATE AGGREGATE latency_histogram_sum(integer[]) (
    SFUNC = latency_histogram_add,
    STYPE = integer[],
    PARALLEL = SAFE
);

-- Interpolating within the bucket follows Prometheus' histogram_quantile
-- (promql/quantile.go), with the bucket narrowed to the observed min and max.
-- latency_quantile_us returns the q-quantile (0 < q <= 1) of a histogram in
-- microseconds: the rank q * total falls into one bucket, and the value is
-- interpolated linearly between that bucket's bounds, narrowed to the observed
-- min and max (so the open last bucket ends at max, and a single-valued hour
-- gives that exact value). NULL for an empty histogram.
-- +goose StatementBegin
CREATE FUNCTION latency_quantile_us(histogram integer[], q double precision, min_us bigint, max_us bigint)
RETURNS double precision
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    bounds constant bigint[] := latency_bounds_us();
    total  bigint;
    target double precision;
    cum    bigint := 0;
    n      bigint;
    lo     double precision;
    hi     double precision;
BEGIN
    SELECT sum(x) INTO total FROM unnest(histogram) AS x;
    IF total IS NULL OR total = 0 THEN
        RETURN NULL;
    END IF;
    target := q * total;
    FOR i IN 1 .. array_length(histogram, 1) LOOP
        n := histogram[i];
        IF n > 0 AND cum + n >= target THEN
            lo := greatest(bounds[i], min_us);
            hi := CASE WHEN i < array_length(bounds, 1) THEN least(bounds[i + 1], max_us) ELSE max_us END;
            RETURN lo + (hi - lo) * (target - cum) / n;
        END IF;
        cum := cum + n;
    END LOOP;
    RETURN max_us;
END
$$;
-- +goose StatementEnd

-- Per target and UTC hour, maintained by the recorder in the transaction that
-- inserts the raw rows and only from the rows that insert actually added, so
-- every count is exact whatever Kafka redelivers. Response times are in
-- microseconds and cover every check, up or down (a timeout is slow too).
CREATE TABLE check_results_hourly (
    target_id                 text        NOT NULL,
    hour                      timestamptz NOT NULL,
    checks                    bigint      NOT NULL,
    up                        bigint      NOT NULL,
    down                      bigint      NOT NULL,
    failures_dns              bigint      NOT NULL,
    failures_connect          bigint      NOT NULL,
    failures_tls              bigint      NOT NULL,
    failures_timeout          bigint      NOT NULL,
    failures_http_status      bigint      NOT NULL,
    failures_content_mismatch bigint      NOT NULL,
    failures_other            bigint      NOT NULL,
    response_time_min_us      bigint      NOT NULL,
    response_time_max_us      bigint      NOT NULL,
    response_time_sum_us      bigint      NOT NULL,
    -- Counts per bucket of latency_bounds_us().
    latency_histogram         integer[]   NOT NULL,
    PRIMARY KEY (target_id, hour)
);

-- Every target over a time range (target_summary_7d, dashboards).
CREATE INDEX check_results_hourly_hour ON check_results_hourly (hour);

-- +goose Down
DROP TABLE check_results_hourly;
DROP FUNCTION latency_quantile_us(integer[], double precision, bigint, bigint);
DROP AGGREGATE latency_histogram_sum(integer[]);
DROP FUNCTION latency_histogram_add(integer[], integer[]);
DROP FUNCTION latency_bounds_us();
