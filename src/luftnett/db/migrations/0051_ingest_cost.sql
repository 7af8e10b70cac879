-- 0051: two costs the collector paid on every batch (docs/benchmarks.md, "Collector").
--
-- 1. The devices trigger of 0050 refreshed the calibration spans of every device the collector
--    upserted: the upsert sets sensor_model (to the same value, mostly), and a trigger
--    "UPDATE OF sensor_model" fires whenever the column is in the SET list, changed or not. The
--    refresh deletes and inserts the device's spans (dead rows, advisory locks): 11 % of the
--    server's CPU per batch. Spans depend only on device_id and sensor_model, so updates now
--    refresh them only when one of the two actually changes.
-- 2. readings.device_id compares byte-wise (COLLATE "C", as calibrated_values and
--    calibration_spans do since 0011/0050): its index (device_id, ts DESC) is entered once per
--    stored reading, and the collation of the database (C.UTF-8 here) made every key comparison
--    a strcoll() call. Device ids are [a-z0-9-] (the MQTT contract), for which both orders are
--    the same; only the index is rebuilt, not the table. The two views over readings depend on
--    the column's type and are created again from their stored definitions (pg_get_viewdef),
--    unchanged. On TimescaleDB the continuous aggregates of 0004 depend on the column too, so
--    there it keeps the database collation (a notice says so); results are the same either way.

DROP TRIGGER devices_calibration_spans ON devices;
CREATE TRIGGER devices_calibration_spans
    AFTER INSERT OR DELETE ON devices
    FOR EACH ROW EXECUTE FUNCTION luftnett_spans_on_device();
CREATE TRIGGER devices_calibration_spans_update
    AFTER UPDATE OF device_id, sensor_model ON devices
    FOR EACH ROW
    WHEN (OLD.device_id IS DISTINCT FROM NEW.device_id
          OR OLD.sensor_model IS DISTINCT FROM NEW.sensor_model)
    EXECUTE FUNCTION luftnett_spans_on_device();

DO $migration$
DECLARE
    effective text := pg_get_viewdef('readings_effective'::regclass);
    keys text := pg_get_viewdef('reading_keys'::regclass);
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        RAISE NOTICE 'luftnett: TimescaleDB: readings.device_id keeps the database collation';
        RETURN;
    END IF;
    DROP VIEW reading_keys;
    DROP VIEW readings_effective;
    ALTER TABLE readings ALTER COLUMN device_id TYPE text COLLATE "C";
    EXECUTE 'CREATE VIEW readings_effective AS ' || effective;
    EXECUTE 'CREATE VIEW reading_keys AS ' || keys;
END
$migration$;
