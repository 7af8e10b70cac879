-- 0053: the writer adds each batch to its device-hours instead of having them recomputed.
-- A batch's hourly partial sums (exact numerics, computed by the collector as PostgreSQL
-- would: luftnett.collector.pgnumeric) are added to rollup_hourly in the batch's transaction;
-- only the days over those hours are left for the refresh. hour_current = true marks such a
-- row: its hour is up to date, its days are not; false (the default, and what an older
-- collector writes) still asks for the whole hour to be recomputed from the readings.
ALTER TABLE rollup_dirty ADD COLUMN hour_current boolean NOT NULL DEFAULT false;
