-- 0056: a fleet default calibrates the readings of its own sensor model, whatever else the box
-- carries (docs/calibration.md, "Which version applies").
--
-- Until now a fleet default applied to a device by devices.sensor_model: one model per box. A
-- box with an SDS011 and the NO2 module has two, and the NO2 module's fleet default was never in
-- force there (devices.sensor_model said sds011, or flipped with the last message); a box whose
-- SDS011 was replaced by a PMS5003 had the PMS5003's default applied to its SDS011 years once
-- its spans were recomputed. The rule is now per reading:
--
--   the device's own latest activation of the pollutant with valid_from <= t, else the latest
--   fleet default of the reading's own sensor model with valid_from <= t, else none.
--
-- calibration_spans keeps, per device and pollutant, the device's own spans (sensor_model NULL:
-- they apply to every sensor of the box) and each of its sensor models' fleet-default spans
-- (sensor_model set; they end where the device's own calibration begins). Spans of different
-- models overlap in time, but a version's spans never do (a fleet default belongs to one model),
-- so calibrated_current (0050, unchanged) still gives each reading's value once: a reading has
-- values only of versions that apply to it (at ingest, in jobs and in reprocessing). The key is
-- now (device_id, pollutant, version_id, valid_from).
--
-- A device's sensor models are those it has reported through (device_sensors, 0055) and
-- devices.sensor_model. A new sensor model on a device refreshes its spans (trigger below).
--
-- Values a fleet default of another model gave a reading under the old rule (a box with two PM
-- models) are removed. The readings of a box's second sensor got no calibrated value from their
-- own fleet default before: `luftnett calibrate reprocess --device ID` gives them theirs
-- (CHANGELOG).

-- The rule, for a reading of sensor model p_model.
CREATE FUNCTION luftnett_active_version(p_device text, p_pollutant text, p_ts timestamptz,
                                        p_model text)
RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT a.version_id FROM calibration_activations a
         WHERE a.device_id = p_device AND a.pollutant = p_pollutant AND a.valid_from <= p_ts
         ORDER BY a.valid_from DESC, a.activation_id DESC LIMIT 1),
        (SELECT a.version_id FROM calibration_activations a
         WHERE a.device_id IS NULL AND a.sensor_model = p_model AND a.pollutant = p_pollutant
           AND a.valid_from <= p_ts
         ORDER BY a.valid_from DESC, a.activation_id DESC LIMIT 1)
    )
$$;

ALTER TABLE calibration_spans ADD COLUMN sensor_model text COLLATE "C";
ALTER TABLE calibration_spans DROP CONSTRAINT calibration_spans_pkey;
ALTER TABLE calibration_spans ADD PRIMARY KEY (device_id, pollutant, version_id, valid_from);

-- The spans of one device and pollutant: its own activations' (sensor_model NULL), and for each
-- of its sensor models with a fleet default of the pollutant, that model's fleet defaults' until
-- the device's own calibration begins. The resolved version can only change at an activation's
-- valid_from, so it is resolved there (per model) and held until the next.
CREATE OR REPLACE FUNCTION luftnett_refresh_spans(p_device text, p_pollutant text)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('luftnett_spans'), hashtext(p_device || '/' || p_pollutant));
    DELETE FROM calibration_spans WHERE device_id = p_device AND pollutant = p_pollutant;
    IF NOT EXISTS (SELECT 1 FROM devices d WHERE d.device_id = p_device) THEN
        RETURN;  -- deleted: its device_sensors rows may stay, its spans go
    END IF;
    INSERT INTO calibration_spans (device_id, pollutant, sensor_model, version_id, valid_from,
                                   valid_to)
    WITH m AS (
        SELECT NULL::text AS model
        UNION ALL
        SELECT DISTINCT a.sensor_model FROM calibration_activations a
        WHERE a.device_id IS NULL AND a.pollutant = p_pollutant
          AND (a.sensor_model IN (SELECT s.sensor_model FROM device_sensors s
                                  WHERE s.device_id = p_device)
               OR a.sensor_model = (SELECT d.sensor_model FROM devices d
                                    WHERE d.device_id = p_device))
    ), b AS (
        SELECT DISTINCT m.model, a.valid_from AS t
        FROM m JOIN calibration_activations a
          ON a.pollutant = p_pollutant AND (a.device_id = p_device OR a.sensor_model = m.model)
    ), v AS (
        SELECT model, t, lead(t, 1, 'infinity') OVER (PARTITION BY model ORDER BY t) AS t_next,
               luftnett_active_version(p_device, p_pollutant, t, model) AS version_id
        FROM b
    ), g AS (
        SELECT *, count(*) FILTER (WHERE is_new) OVER (PARTITION BY model ORDER BY t) AS grp
        FROM (SELECT *, version_id IS DISTINCT FROM lag(version_id)
                        OVER (PARTITION BY model ORDER BY t) AS is_new
              FROM v) x
    )
    SELECT p_device, p_pollutant, g.model, min(g.version_id), min(g.t), max(g.t_next)
    FROM g JOIN calibration_versions cv ON cv.version_id = g.version_id
    -- a model's timeline keeps its fleet defaults; the device's own versions are in the NULL one
    WHERE g.model IS NULL OR cv.device_id IS NULL
    GROUP BY g.model, g.grp;
END
$$;

-- A fleet default concerns every device that has (had) a sensor of its model.
CREATE OR REPLACE FUNCTION luftnett_refresh_spans_of(p_device text, p_sensor_model text,
                                                     p_pollutant text)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    dev text;
BEGIN
    IF p_device IS NOT NULL THEN
        PERFORM luftnett_refresh_spans(p_device, p_pollutant);
    ELSE
        FOR dev IN SELECT d.device_id FROM devices d WHERE d.sensor_model = p_sensor_model
                   UNION
                   SELECT s.device_id FROM device_sensors s WHERE s.sensor_model = p_sensor_model
                   ORDER BY 1 LOOP
            PERFORM luftnett_refresh_spans(dev, p_pollutant);
        END LOOP;
    END IF;
END
$$;

-- A sensor model new to a device brings its fleet defaults' spans (a new serial of a model the
-- device has spans of changes nothing).
CREATE FUNCTION luftnett_spans_on_sensor() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    pol text;
BEGIN
    FOR pol IN SELECT DISTINCT a.pollutant FROM calibration_activations a
               WHERE a.device_id IS NULL AND a.sensor_model = NEW.sensor_model
                 AND NOT EXISTS (SELECT 1 FROM calibration_spans s
                                 WHERE s.device_id = NEW.device_id AND s.pollutant = a.pollutant
                                   AND s.sensor_model = NEW.sensor_model)
               ORDER BY 1
    LOOP
        PERFORM luftnett_refresh_spans(NEW.device_id, pol);
    END LOOP;
    RETURN NULL;
END
$$;
CREATE TRIGGER device_sensors_calibration_spans
    AFTER INSERT ON device_sensors
    FOR EACH ROW EXECUTE FUNCTION luftnett_spans_on_sensor();

-- "The version in force for a device" where no reading is at hand (the API's device page, the
-- SensorThings Things): its own, else the fleet default of the sensor model it last reported
-- the pollutant through (of those with a span then), else of devices.sensor_model.
CREATE OR REPLACE FUNCTION luftnett_active_version(p_device text, p_pollutant text,
                                                   p_ts timestamptz)
RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT s.version_id
    FROM calibration_spans s
    LEFT JOIN devices d ON d.device_id = s.device_id
    LEFT JOIN LATERAL (SELECT max(h.last_ts) AS heard FROM device_sensors h
                       WHERE h.device_id = s.device_id AND h.sensor_model = s.sensor_model) h
      ON true
    WHERE s.device_id = p_device AND s.pollutant = p_pollutant
      AND s.valid_from <= p_ts AND p_ts < s.valid_to
    ORDER BY s.sensor_model IS NULL DESC, h.heard DESC NULLS LAST,
             s.sensor_model = d.sensor_model DESC, s.sensor_model
    LIMIT 1
$$;

-- Values the old rule gave a reading from a fleet default of another sensor model: only boxes
-- that have reported through more than one model, or whose devices.sensor_model is not one they
-- reported through, can hold any.
DELETE FROM calibrated_values c
USING calibration_versions v, readings r
WHERE c.device_id IN (
        SELECT s.device_id FROM device_sensors s
        LEFT JOIN devices d ON d.device_id = s.device_id
        GROUP BY s.device_id
        HAVING count(DISTINCT s.sensor_model) > 1
            OR NOT bool_or(s.sensor_model = d.sensor_model))
  AND v.version_id = c.version_id AND v.device_id IS NULL
  AND r.device_id = c.device_id AND r.ts = c.ts AND r.seq = c.seq
  AND r.sensor_model IS DISTINCT FROM v.sensor_model;

-- Refill every device's spans under the new rule.
DELETE FROM calibration_spans;
SELECT luftnett_refresh_spans(k.device_id, k.pollutant)
FROM (SELECT DISTINCT d.device_id, a.pollutant
      FROM calibration_activations a
      JOIN devices d ON d.device_id = a.device_id OR d.sensor_model = a.sensor_model
        OR EXISTS (SELECT 1 FROM device_sensors s
                   WHERE s.device_id = d.device_id AND s.sensor_model = a.sensor_model)
      ORDER BY 1, 2) k;
ANALYZE calibration_spans;
