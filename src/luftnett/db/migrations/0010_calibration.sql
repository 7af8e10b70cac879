-- 0010: calibration in the system: reference stations and their hourly observations, calibration
-- versions (never overwritten), activations, and calibrated values per reading and version.
-- Plain PostgreSQL; nothing here needs TimescaleDB.

-- A reference (regulatory) monitoring station. station_id is the provider's id where it has one
-- (NILU: the EoI code, e.g. NO0057A).
CREATE TABLE reference_stations (
    station_id   text PRIMARY KEY CHECK (station_id ~ '^[A-Za-z0-9._-]{1,60}$'),
    name         text NOT NULL,
    provider     text NOT NULL,                 -- 'nilu', 'csv', ...
    lat          double precision CHECK (lat BETWEEN -90 AND 90),
    lon          double precision CHECK (lon BETWEEN -180 AND 180),
    pollutants   text[] NOT NULL DEFAULT '{}',
    attribution  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Hourly reference values, in luftnett's unit of the pollutant (PM µg/m³, NO2 and O3 ppb), for
-- the hour [hour_start, hour_start + 1 h). status is the provider's verification status.
CREATE TABLE reference_observations (
    station_id   text NOT NULL REFERENCES reference_stations (station_id),
    pollutant    text NOT NULL CHECK (pollutant IN ('pm25', 'pm10', 'no2', 'o3')),
    hour_start   timestamptz NOT NULL,
    value        double precision NOT NULL,
    status       text NOT NULL CHECK (status IN ('provisional', 'validated')),
    source       text NOT NULL,                 -- 'nilu', 'csv:<file name>'
    imported_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (station_id, pollutant, hour_start)
);

-- One calibration model. A row is never changed except its status (and why/when); a trigger
-- refuses anything else, and refuses DELETE. A new fit is a new row.
CREATE TABLE calibration_versions (
    version_id            bigserial PRIMARY KEY,
    device_id             text REFERENCES devices (device_id),
    sensor_model          text,                 -- a fleet default is per sensor model (driver name)
    pollutant             text NOT NULL CHECK (pollutant IN ('pm25', 'pm10', 'no2', 'o3')),
    kind                  text NOT NULL CHECK (kind IN ('colocation', 'fleet-default', 'imported')),
    model_id              text NOT NULL,        -- CalibrationModel.model_id (content hash)
    model                 json NOT NULL,        -- CalibrationModel.to_json(); json keeps key order
    metrics               jsonb NOT NULL DEFAULT '{}'::jsonb,
    reference_station_id  text REFERENCES reference_stations (station_id),
    trained_from          timestamptz,
    trained_to            timestamptz,
    evaluated_from        timestamptz,
    evaluated_to          timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    created_by            text NOT NULL,
    status                text NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'refit-needed', 'retired')),
    status_reason         text,
    status_changed_at     timestamptz,
    CHECK ((device_id IS NULL) <> (sensor_model IS NULL))
);
CREATE INDEX calibration_versions_device_idx ON calibration_versions (device_id, pollutant);
CREATE INDEX calibration_versions_station_idx
    ON calibration_versions (reference_station_id, pollutant);

CREATE FUNCTION luftnett_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'calibration version % cannot be deleted (versions are kept forever)',
            OLD.version_id USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF (to_jsonb(NEW) - 'status' - 'status_reason' - 'status_changed_at')
       IS DISTINCT FROM (to_jsonb(OLD) - 'status' - 'status_reason' - 'status_changed_at') THEN
        RAISE EXCEPTION 'calibration version % cannot be changed; fit a new version instead',
            OLD.version_id USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER calibration_versions_immutable BEFORE UPDATE OR DELETE ON calibration_versions
    FOR EACH ROW EXECUTE FUNCTION luftnett_versions_immutable();

-- Which version is current for a device (or, for fleet defaults, a sensor model) and pollutant
-- from valid_from on: the latest valid_from <= t wins, the later activation on a tie.
CREATE TABLE calibration_activations (
    activation_id  bigserial PRIMARY KEY,
    device_id      text REFERENCES devices (device_id),
    sensor_model   text,
    pollutant      text NOT NULL CHECK (pollutant IN ('pm25', 'pm10', 'no2', 'o3')),
    version_id     bigint NOT NULL REFERENCES calibration_versions (version_id),
    valid_from     timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text NOT NULL,
    CHECK ((device_id IS NULL) <> (sensor_model IS NULL))
);
CREATE INDEX calibration_activations_device_idx
    ON calibration_activations (device_id, pollutant, valid_from);
CREATE INDEX calibration_activations_model_idx
    ON calibration_activations (sensor_model, pollutant, valid_from);

-- Calibrated values per reading and version: old versions' values stay ("as calibrated by
-- version N"). Missing inputs give no row. ts repeats the reading's ts for the lookups below.
CREATE TABLE calibrated_values (
    device_id   text NOT NULL,
    seq         bigint NOT NULL,
    pollutant   text NOT NULL,
    version_id  bigint NOT NULL REFERENCES calibration_versions (version_id),
    ts          timestamptz NOT NULL,
    value       real NOT NULL,
    u           real NOT NULL,                  -- standard uncertainty, same unit
    PRIMARY KEY (device_id, seq, pollutant, version_id)
);

-- The version in force for a device and pollutant at time t: the device's own activation, else
-- the fleet default activated for its sensor model, else NULL. luftnett.calibration.apply_db
-- resolves the same rule from the same rows.
CREATE FUNCTION luftnett_active_version(p_device text, p_pollutant text, p_ts timestamptz)
RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT a.version_id FROM calibration_activations a
         WHERE a.device_id = p_device AND a.pollutant = p_pollutant AND a.valid_from <= p_ts
         ORDER BY a.valid_from DESC, a.activation_id DESC LIMIT 1),
        (SELECT a.version_id FROM calibration_activations a
         JOIN devices d ON d.sensor_model = a.sensor_model
         WHERE d.device_id = p_device AND a.pollutant = p_pollutant AND a.valid_from <= p_ts
         ORDER BY a.valid_from DESC, a.activation_id DESC LIMIT 1)
    )
$$;

-- Calibrated values as the version in force at each reading's time made them.
CREATE VIEW calibrated_current AS
SELECT c.*
FROM calibrated_values c
WHERE c.version_id = luftnett_active_version(c.device_id, c.pollutant, c.ts);
