-- 0003: quality control, staff annotations with an audit trail, rollups, ingest counts.
-- Plain PostgreSQL; identical on TimescaleDB (0004 adds what only TimescaleDB can do).

-- Quality control: which checks ran (qc_checks) beside which fired (flags), and the version of
-- the flag registry that computed them (0 = before quality control existed).
ALTER TABLE readings ADD COLUMN qc_checks bigint NOT NULL DEFAULT 0;
ALTER TABLE readings ADD COLUMN qc_version smallint NOT NULL DEFAULT 0;

-- The ledger is read per device and day.
CREATE INDEX reading_keys_device_ts_idx ON reading_keys (device_id, ts);

-- Staff annotations of a period of one device. Revoking sets revoked_*; the row stays.
CREATE TABLE annotations (
    annotation_id  bigserial PRIMARY KEY,
    device_id      text NOT NULL REFERENCES devices (device_id),
    starts_at      timestamptz NOT NULL,
    ends_at        timestamptz NOT NULL,
    kind           text NOT NULL
                   CHECK (kind IN ('maintenance', 'roadworks', 'fireworks', 'fog', 'other')),
    invalidates    boolean NOT NULL DEFAULT false,
    reason         text NOT NULL CHECK (length(btrim(reason)) > 0),
    created_by     text NOT NULL CHECK (length(btrim(created_by)) > 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz,
    revoked_by     text,
    revoke_reason  text,
    CHECK (ends_at > starts_at),
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);
CREATE INDEX annotations_device_idx ON annotations (device_id, starts_at);

-- Every change to an annotation, whoever made it (psql included): a trigger writes it.
-- The actor is the session setting luftnett.actor (set by the CLI), else the database user.
CREATE TABLE annotation_audit (
    audit_id       bigserial PRIMARY KEY,
    annotation_id  bigint NOT NULL,
    action         text NOT NULL CHECK (action IN ('insert', 'update', 'delete')),
    changed_by     text NOT NULL,
    changed_at     timestamptz NOT NULL DEFAULT now(),
    old_row        jsonb,
    new_row        jsonb
);
CREATE INDEX annotation_audit_annotation_idx ON annotation_audit (annotation_id, audit_id);

CREATE FUNCTION luftnett_annotation_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO annotation_audit (annotation_id, action, changed_by, old_row, new_row)
    VALUES (
        CASE WHEN TG_OP = 'DELETE' THEN OLD.annotation_id ELSE NEW.annotation_id END,
        lower(TG_OP),
        coalesce(nullif(current_setting('luftnett.actor', true), ''), current_user),
        CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE to_jsonb(OLD) END,
        CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE to_jsonb(NEW) END
    );
    RETURN NULL;
END
$$;
CREATE TRIGGER annotations_audit AFTER INSERT OR UPDATE OR DELETE ON annotations
    FOR EACH ROW EXECUTE FUNCTION luftnett_annotation_audit();

-- Readings as the statistics see them: the stored flags plus ANNOTATED_INVALID (bit 10,
-- computed here, never stored) while an active invalidating annotation covers the reading.
CREATE VIEW readings_effective AS
SELECT r.*,
       r.flags | CASE WHEN EXISTS (
           SELECT 1 FROM annotations a
           WHERE a.device_id = r.device_id AND a.invalidates AND a.revoked_at IS NULL
             AND r.ts >= a.starts_at AND r.ts < a.ends_at
       ) THEN 1024::bigint ELSE 0::bigint END AS effective_flags
FROM readings r;

-- Hourly rollups per device (hour = [hour_start, hour_start + 1 h) of the window end ts, UTC).
-- Kept by the collector after each batch and by `luftnett rollup refresh`; both recompute
-- whole device-hours from readings_effective, so they give the same rows.
CREATE TABLE rollup_hourly (
    device_id      text NOT NULL,
    hour_start     timestamptz NOT NULL,
    window_s       real NOT NULL,
    n_expected     integer NOT NULL,
    n_stored       integer NOT NULL,
    n_valid        integer NOT NULL,
    pm1_ugm3_n integer NOT NULL DEFAULT 0,
    pm1_ugm3_sum numeric,
    pm1_ugm3_min real,
    pm1_ugm3_max real,
    pm25_ugm3_n integer NOT NULL DEFAULT 0,
    pm25_ugm3_sum numeric,
    pm25_ugm3_min real,
    pm25_ugm3_max real,
    pm10_ugm3_n integer NOT NULL DEFAULT 0,
    pm10_ugm3_sum numeric,
    pm10_ugm3_min real,
    pm10_ugm3_max real,
    no2_ppb_n integer NOT NULL DEFAULT 0,
    no2_ppb_sum numeric,
    no2_ppb_min real,
    no2_ppb_max real,
    temperature_c_n integer NOT NULL DEFAULT 0,
    temperature_c_sum numeric,
    temperature_c_min real,
    temperature_c_max real,
    rh_pct_n integer NOT NULL DEFAULT 0,
    rh_pct_sum numeric,
    rh_pct_min real,
    rh_pct_max real,
    coverage_pct   numeric GENERATED ALWAYS AS (
        CASE WHEN n_expected > 0 THEN round(100.0 * n_valid / n_expected, 1) END) STORED,
    refreshed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, hour_start)
);

-- Daily rollups per device, from rollup_hourly, for each day convention:
-- 'utc+01' (compliance, as the Norwegian reference network) and 'Europe/Oslo' (display).
CREATE TABLE rollup_daily (
    device_id       text NOT NULL,
    day_convention  text NOT NULL CHECK (day_convention IN ('utc+01', 'Europe/Oslo')),
    day             date NOT NULL,
    day_start       timestamptz NOT NULL,
    day_end         timestamptz NOT NULL,
    hours_in_day    smallint NOT NULL,
    hours_with_data smallint NOT NULL,
    hours_valid     smallint NOT NULL,
    window_s        real NOT NULL,
    n_expected      integer NOT NULL,
    n_stored        integer NOT NULL,
    n_valid         integer NOT NULL,
    pm1_ugm3_n integer NOT NULL DEFAULT 0,
    pm1_ugm3_sum numeric,
    pm1_ugm3_min real,
    pm1_ugm3_max real,
    pm25_ugm3_n integer NOT NULL DEFAULT 0,
    pm25_ugm3_sum numeric,
    pm25_ugm3_min real,
    pm25_ugm3_max real,
    pm10_ugm3_n integer NOT NULL DEFAULT 0,
    pm10_ugm3_sum numeric,
    pm10_ugm3_min real,
    pm10_ugm3_max real,
    no2_ppb_n integer NOT NULL DEFAULT 0,
    no2_ppb_sum numeric,
    no2_ppb_min real,
    no2_ppb_max real,
    temperature_c_n integer NOT NULL DEFAULT 0,
    temperature_c_sum numeric,
    temperature_c_min real,
    temperature_c_max real,
    rh_pct_n integer NOT NULL DEFAULT 0,
    rh_pct_sum numeric,
    rh_pct_min real,
    rh_pct_max real,
    coverage_pct    numeric GENERATED ALWAYS AS (
        CASE WHEN n_expected > 0 THEN round(100.0 * n_valid / n_expected, 1) END) STORED,
    day_valid       boolean GENERATED ALWAYS AS (hours_valid >= 18) STORED,
    refreshed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, day_convention, day)
);

-- What the writer received and stored per device and hour of ts: duplicates = received - stored.
CREATE TABLE ingest_counts (
    device_id   text NOT NULL,
    hour_start  timestamptz NOT NULL,
    received    bigint NOT NULL DEFAULT 0,
    stored      bigint NOT NULL DEFAULT 0,
    duplicates  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (device_id, hour_start)
);
