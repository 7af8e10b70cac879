-- 0040: per-quantity means of the valid hours of each rollup day, so that one device's daily
-- series is read from ~365 rows instead of aggregating ~8,760 hourly rollups per request.
--
-- rollup_daily (0003) sums readings over the day (mean of the day's valid readings) and counts
-- an hour valid when 75 % of ALL its readings are valid; the API's daily mean is the mean of
-- the valid HOURLY means of each quantity, an hour being valid when >= 75 % of its expected
-- readings have a valid value of that quantity. This table keeps exactly those inputs per
-- (device, day convention, day): the hours valid per quantity, the sum / min / max of their
-- hourly means (float8, as the API computes them from rollup_hourly), the valid readings per
-- quantity and the stored readings.
--
-- Kept by the database itself: statement-level triggers on rollup_daily recompute the days the
-- collector (or `luftnett rollup refresh`) has just written, from rollup_hourly, in the same
-- statement; deleting a rollup_daily row deletes its row here (ON DELETE CASCADE). Rows exist
-- exactly where rollup_daily rows exist. The hour rule is fixed at 75 % here; the API falls back
-- to rollup_hourly for any other hour_min_coverage_pct.

CREATE TABLE rollup_daily_means (
    device_id       text NOT NULL,
    day_convention  text NOT NULL,
    day             date NOT NULL,
    day_start       timestamptz NOT NULL,
    day_end         timestamptz NOT NULL,
    hours_in_day    smallint NOT NULL,
    n_stored        integer NOT NULL,
    pm1_ugm3_n integer NOT NULL DEFAULT 0,
    pm1_ugm3_hours_valid smallint NOT NULL DEFAULT 0,
    pm1_ugm3_mean_sum float8,
    pm1_ugm3_mean_min float8,
    pm1_ugm3_mean_max float8,
    pm25_ugm3_n integer NOT NULL DEFAULT 0,
    pm25_ugm3_hours_valid smallint NOT NULL DEFAULT 0,
    pm25_ugm3_mean_sum float8,
    pm25_ugm3_mean_min float8,
    pm25_ugm3_mean_max float8,
    pm10_ugm3_n integer NOT NULL DEFAULT 0,
    pm10_ugm3_hours_valid smallint NOT NULL DEFAULT 0,
    pm10_ugm3_mean_sum float8,
    pm10_ugm3_mean_min float8,
    pm10_ugm3_mean_max float8,
    no2_ppb_n integer NOT NULL DEFAULT 0,
    no2_ppb_hours_valid smallint NOT NULL DEFAULT 0,
    no2_ppb_mean_sum float8,
    no2_ppb_mean_min float8,
    no2_ppb_mean_max float8,
    temperature_c_n integer NOT NULL DEFAULT 0,
    temperature_c_hours_valid smallint NOT NULL DEFAULT 0,
    temperature_c_mean_sum float8,
    temperature_c_mean_min float8,
    temperature_c_mean_max float8,
    rh_pct_n integer NOT NULL DEFAULT 0,
    rh_pct_hours_valid smallint NOT NULL DEFAULT 0,
    rh_pct_mean_sum float8,
    rh_pct_mean_min float8,
    rh_pct_mean_max float8,
    PRIMARY KEY (device_id, day_convention, day),
    FOREIGN KEY (device_id, day_convention, day)
        REFERENCES rollup_daily (device_id, day_convention, day) ON DELETE CASCADE
);

CREATE FUNCTION luftnett_rollup_daily_means() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_daily_means (
    device_id, day_convention, day, day_start, day_end,
    hours_in_day, n_stored, pm1_ugm3_n, pm1_ugm3_hours_valid, pm1_ugm3_mean_sum,
    pm1_ugm3_mean_min, pm1_ugm3_mean_max, pm25_ugm3_n, pm25_ugm3_hours_valid, pm25_ugm3_mean_sum,
    pm25_ugm3_mean_min, pm25_ugm3_mean_max, pm10_ugm3_n, pm10_ugm3_hours_valid, pm10_ugm3_mean_sum,
    pm10_ugm3_mean_min, pm10_ugm3_mean_max, no2_ppb_n, no2_ppb_hours_valid, no2_ppb_mean_sum,
    no2_ppb_mean_min, no2_ppb_mean_max, temperature_c_n, temperature_c_hours_valid, temperature_c_mean_sum,
    temperature_c_mean_min, temperature_c_mean_max, rh_pct_n, rh_pct_hours_valid, rh_pct_mean_sum,
    rh_pct_mean_min, rh_pct_mean_max)
    SELECT d.device_id, d.day_convention, d.day, d.day_start, d.day_end, d.hours_in_day,
           sum(h.n_stored)::int,
           sum(h.pm1_ugm3_n)::int,
           count(*) FILTER (WHERE h.pm1_ugm3_n * 4 >= h.n_expected * 3)::smallint,
           sum(h.pm1_ugm3_sum::float8 / nullif(h.pm1_ugm3_n, 0)) FILTER (WHERE h.pm1_ugm3_n * 4 >= h.n_expected * 3),
           min(h.pm1_ugm3_sum::float8 / nullif(h.pm1_ugm3_n, 0)) FILTER (WHERE h.pm1_ugm3_n * 4 >= h.n_expected * 3),
           max(h.pm1_ugm3_sum::float8 / nullif(h.pm1_ugm3_n, 0)) FILTER (WHERE h.pm1_ugm3_n * 4 >= h.n_expected * 3),
           sum(h.pm25_ugm3_n)::int,
           count(*) FILTER (WHERE h.pm25_ugm3_n * 4 >= h.n_expected * 3)::smallint,
           sum(h.pm25_ugm3_sum::float8 / nullif(h.pm25_ugm3_n, 0)) FILTER (WHERE h.pm25_ugm3_n * 4 >= h.n_expected * 3),
           min(h.pm25_ugm3_sum::float8 / nullif(h.pm25_ugm3_n, 0)) FILTER (WHERE h.pm25_ugm3_n * 4 >= h.n_expected * 3),
           max(h.pm25_ugm3_sum::float8 / nullif(h.pm25_ugm3_n, 0)) FILTER (WHERE h.pm25_ugm3_n * 4 >= h.n_expected * 3),
           sum(h.pm10_ugm3_n)::int,
           count(*) FILTER (WHERE h.pm10_ugm3_n * 4 >= h.n_expected * 3)::smallint,
           sum(h.pm10_ugm3_sum::float8 / nullif(h.pm10_ugm3_n, 0)) FILTER (WHERE h.pm10_ugm3_n * 4 >= h.n_expected * 3),
           min(h.pm10_ugm3_sum::float8 / nullif(h.pm10_ugm3_n, 0)) FILTER (WHERE h.pm10_ugm3_n * 4 >= h.n_expected * 3),
           max(h.pm10_ugm3_sum::float8 / nullif(h.pm10_ugm3_n, 0)) FILTER (WHERE h.pm10_ugm3_n * 4 >= h.n_expected * 3),
           sum(h.no2_ppb_n)::int,
           count(*) FILTER (WHERE h.no2_ppb_n * 4 >= h.n_expected * 3)::smallint,
           sum(h.no2_ppb_sum::float8 / nullif(h.no2_ppb_n, 0)) FILTER (WHERE h.no2_ppb_n * 4 >= h.n_expected * 3),
           min(h.no2_ppb_sum::float8 / nullif(h.no2_ppb_n, 0)) FILTER (WHERE h.no2_ppb_n * 4 >= h.n_expected * 3),
           max(h.no2_ppb_sum::float8 / nullif(h.no2_ppb_n, 0)) FILTER (WHERE h.no2_ppb_n * 4 >= h.n_expected * 3),
           sum(h.temperature_c_n)::int,
           count(*) FILTER (WHERE h.temperature_c_n * 4 >= h.n_expected * 3)::smallint,
           sum(h.temperature_c_sum::float8 / nullif(h.temperature_c_n, 0)) FILTER (WHERE h.temperature_c_n * 4 >= h.n_expected * 3),
           min(h.temperature_c_sum::float8 / nullif(h.temperature_c_n, 0)) FILTER (WHERE h.temperature_c_n * 4 >= h.n_expected * 3),
           max(h.temperature_c_sum::float8 / nullif(h.temperature_c_n, 0)) FILTER (WHERE h.temperature_c_n * 4 >= h.n_expected * 3),
           sum(h.rh_pct_n)::int,
           count(*) FILTER (WHERE h.rh_pct_n * 4 >= h.n_expected * 3)::smallint,
           sum(h.rh_pct_sum::float8 / nullif(h.rh_pct_n, 0)) FILTER (WHERE h.rh_pct_n * 4 >= h.n_expected * 3),
           min(h.rh_pct_sum::float8 / nullif(h.rh_pct_n, 0)) FILTER (WHERE h.rh_pct_n * 4 >= h.n_expected * 3),
           max(h.rh_pct_sum::float8 / nullif(h.rh_pct_n, 0)) FILTER (WHERE h.rh_pct_n * 4 >= h.n_expected * 3)
    FROM new_days d JOIN rollup_hourly h
      ON h.device_id = d.device_id AND h.hour_start >= d.day_start AND h.hour_start < d.day_end
    GROUP BY d.device_id, d.day_convention, d.day, d.day_start, d.day_end, d.hours_in_day
    ON CONFLICT (device_id, day_convention, day) DO UPDATE SET
        day_start = EXCLUDED.day_start,
        day_end = EXCLUDED.day_end,
        hours_in_day = EXCLUDED.hours_in_day,
        n_stored = EXCLUDED.n_stored,
        pm1_ugm3_n = EXCLUDED.pm1_ugm3_n,
        pm1_ugm3_hours_valid = EXCLUDED.pm1_ugm3_hours_valid,
        pm1_ugm3_mean_sum = EXCLUDED.pm1_ugm3_mean_sum,
        pm1_ugm3_mean_min = EXCLUDED.pm1_ugm3_mean_min,
        pm1_ugm3_mean_max = EXCLUDED.pm1_ugm3_mean_max,
        pm25_ugm3_n = EXCLUDED.pm25_ugm3_n,
        pm25_ugm3_hours_valid = EXCLUDED.pm25_ugm3_hours_valid,
        pm25_ugm3_mean_sum = EXCLUDED.pm25_ugm3_mean_sum,
        pm25_ugm3_mean_min = EXCLUDED.pm25_ugm3_mean_min,
        pm25_ugm3_mean_max = EXCLUDED.pm25_ugm3_mean_max,
        pm10_ugm3_n = EXCLUDED.pm10_ugm3_n,
        pm10_ugm3_hours_valid = EXCLUDED.pm10_ugm3_hours_valid,
        pm10_ugm3_mean_sum = EXCLUDED.pm10_ugm3_mean_sum,
        pm10_ugm3_mean_min = EXCLUDED.pm10_ugm3_mean_min,
        pm10_ugm3_mean_max = EXCLUDED.pm10_ugm3_mean_max,
        no2_ppb_n = EXCLUDED.no2_ppb_n,
        no2_ppb_hours_valid = EXCLUDED.no2_ppb_hours_valid,
        no2_ppb_mean_sum = EXCLUDED.no2_ppb_mean_sum,
        no2_ppb_mean_min = EXCLUDED.no2_ppb_mean_min,
        no2_ppb_mean_max = EXCLUDED.no2_ppb_mean_max,
        temperature_c_n = EXCLUDED.temperature_c_n,
        temperature_c_hours_valid = EXCLUDED.temperature_c_hours_valid,
        temperature_c_mean_sum = EXCLUDED.temperature_c_mean_sum,
        temperature_c_mean_min = EXCLUDED.temperature_c_mean_min,
        temperature_c_mean_max = EXCLUDED.temperature_c_mean_max,
        rh_pct_n = EXCLUDED.rh_pct_n,
        rh_pct_hours_valid = EXCLUDED.rh_pct_hours_valid,
        rh_pct_mean_sum = EXCLUDED.rh_pct_mean_sum,
        rh_pct_mean_min = EXCLUDED.rh_pct_mean_min,
        rh_pct_mean_max = EXCLUDED.rh_pct_mean_max;
    RETURN NULL;
END
$$;

CREATE TRIGGER rollup_daily_means_insert AFTER INSERT ON rollup_daily
    REFERENCING NEW TABLE AS new_days
    FOR EACH STATEMENT EXECUTE FUNCTION luftnett_rollup_daily_means();
CREATE TRIGGER rollup_daily_means_update AFTER UPDATE ON rollup_daily
    REFERENCING NEW TABLE AS new_days
    FOR EACH STATEMENT EXECUTE FUNCTION luftnett_rollup_daily_means();

-- Days already in rollup_daily.
UPDATE rollup_daily SET day_start = day_start;
