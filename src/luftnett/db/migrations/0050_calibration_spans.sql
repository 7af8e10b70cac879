-- 0050: calibration_spans, and calibrated_current as calibrated values joined to their span.
--
-- calibration_spans holds, per device and pollutant, exactly what
-- luftnett_active_version(device, pollutant, t) resolves, as intervals [valid_from, valid_to)
-- of t with one version each (adjacent equal versions merged, times with no version in force
-- left out). calibrated_current joins a reading's spans (by their key) to the primary key of
-- calibrated_values (device_id, seq, version_id): a few index probes per reading instead of
-- resolving the version per value with the function (docs/calibration.md, "Layout").
-- Triggers keep the spans in step with calibration_activations and devices.sensor_model.
--
-- The primary key of calibrated_values stays as 0031 made it, (device_id, seq, version_id).
-- The version before seq, (device_id, version_id, seq), which lets a reprocessing job append a
-- version's values instead of interleaving them with the older versions', was measured and did
-- not make reprocessing faster (docs/benchmarks.md, "Calibration").

CREATE TABLE calibration_spans (
    device_id   text COLLATE "C" NOT NULL,
    pollutant   text COLLATE "C" NOT NULL,
    version_id  bigint NOT NULL,
    valid_from  timestamptz NOT NULL,
    valid_to    timestamptz NOT NULL,           -- 'infinity' for the span in force now
    PRIMARY KEY (device_id, pollutant, valid_from),
    CHECK (valid_from < valid_to)
);

-- Recompute the spans of one device and pollutant from the activations (the rule of
-- luftnett_active_version: the device's own latest activation with valid_from <= t, else the
-- latest fleet default of its sensor model; ties by activation_id). The resolved version can
-- only change at an activation's valid_from, so it is resolved there and held until the next.
-- A transaction-scoped advisory lock per (device, pollutant) serialises concurrent refreshes;
-- each statement below then sees what the holder before committed (READ COMMITTED).
CREATE FUNCTION luftnett_refresh_spans(p_device text, p_pollutant text)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('luftnett_spans'), hashtext(p_device || '/' || p_pollutant));
    DELETE FROM calibration_spans WHERE device_id = p_device AND pollutant = p_pollutant;
    INSERT INTO calibration_spans (device_id, pollutant, version_id, valid_from, valid_to)
    WITH b AS (
        SELECT DISTINCT a.valid_from AS t
        FROM calibration_activations a
        WHERE a.pollutant = p_pollutant
          AND (a.device_id = p_device
               OR a.sensor_model = (SELECT d.sensor_model FROM devices d
                                    WHERE d.device_id = p_device))
    ), v AS (
        SELECT t, lead(t, 1, 'infinity') OVER (ORDER BY t) AS t_next,
               luftnett_active_version(p_device, p_pollutant, t) AS version_id
        FROM b
    ), g AS (
        SELECT *, count(*) FILTER (WHERE is_new) OVER (ORDER BY t) AS grp
        FROM (SELECT *, version_id IS DISTINCT FROM lag(version_id) OVER (ORDER BY t) AS is_new
              FROM v) x
    )
    SELECT p_device, p_pollutant, min(version_id), min(t), max(t_next)
    FROM g WHERE version_id IS NOT NULL
    GROUP BY grp;
END
$$;

-- Every (device, pollutant) an activation row concerns: its device, or each device of its
-- sensor model.
CREATE FUNCTION luftnett_refresh_spans_of(p_device text, p_sensor_model text, p_pollutant text)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    dev text;
BEGIN
    IF p_device IS NOT NULL THEN
        PERFORM luftnett_refresh_spans(p_device, p_pollutant);
    ELSE
        FOR dev IN SELECT d.device_id FROM devices d WHERE d.sensor_model = p_sensor_model
                   ORDER BY d.device_id LOOP
            PERFORM luftnett_refresh_spans(dev, p_pollutant);
        END LOOP;
    END IF;
END
$$;

CREATE FUNCTION luftnett_spans_on_activation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM luftnett_refresh_spans_of(OLD.device_id, OLD.sensor_model, OLD.pollutant);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM luftnett_refresh_spans_of(NEW.device_id, NEW.sensor_model, NEW.pollutant);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER calibration_activations_spans
    AFTER INSERT OR UPDATE OR DELETE ON calibration_activations
    FOR EACH ROW EXECUTE FUNCTION luftnett_spans_on_activation();

-- A device's spans depend on its sensor model (fleet defaults): refresh every pollutant it
-- has spans for or an activation concerns, under its old and its new id and model.
CREATE FUNCTION luftnett_spans_on_device() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    dev text;
    pol text;
BEGIN
    FOR dev, pol IN
        SELECT k.dev, k.pol FROM (
            SELECT s.device_id::text AS dev, s.pollutant::text AS pol FROM calibration_spans s
            WHERE TG_OP <> 'INSERT' AND s.device_id = OLD.device_id
            UNION
            SELECT o.dev, a.pollutant
            FROM (VALUES (CASE WHEN TG_OP <> 'INSERT' THEN OLD.device_id END,
                          CASE WHEN TG_OP <> 'INSERT' THEN OLD.sensor_model END),
                         (CASE WHEN TG_OP <> 'DELETE' THEN NEW.device_id END,
                          CASE WHEN TG_OP <> 'DELETE' THEN NEW.sensor_model END)) AS o(dev, model)
            JOIN calibration_activations a
              ON a.device_id = o.dev OR a.sensor_model = o.model
            WHERE o.dev IS NOT NULL
        ) k ORDER BY 1, 2
    LOOP
        PERFORM luftnett_refresh_spans(dev, pol);
    END LOOP;
    RETURN NULL;
END
$$;
CREATE TRIGGER devices_calibration_spans
    AFTER INSERT OR DELETE OR UPDATE OF device_id, sensor_model ON devices
    FOR EACH ROW EXECUTE FUNCTION luftnett_spans_on_device();

-- Fill for what exists.
SELECT luftnett_refresh_spans(k.device_id, k.pollutant)
FROM (SELECT DISTINCT d.device_id, a.pollutant
      FROM calibration_activations a
      JOIN devices d ON d.device_id = a.device_id OR d.sensor_model = a.sensor_model
      ORDER BY 1, 2) k;
ANALYZE calibration_spans;

-- Same columns and rows as before: each value as the version in force at its reading's time.
-- device_id and pollutant are the span's (equal to the value's by the join): a reader's
-- "device_id = r.device_id AND pollutant = 'pm25'" then finds the reading's spans by their
-- key, and each span's version completes the key of calibrated_values with seq.
DROP VIEW calibrated_current;
CREATE VIEW calibrated_current AS
SELECT s.device_id, c.seq, s.pollutant, c.version_id, c.ts, c.value, c.u
FROM calibration_spans s
JOIN calibrated_values c
  ON c.device_id = s.device_id AND c.version_id = s.version_id AND c.pollutant = s.pollutant
 AND c.ts >= s.valid_from AND c.ts < s.valid_to;
