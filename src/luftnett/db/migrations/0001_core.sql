-- 0001: sites, devices, deployments, readings, the (device, seq) ledger, quarantine.
-- Plain PostgreSQL; 0002 turns readings into a hypertable where TimescaleDB is available.

CREATE TABLE sites (
    site_id     text PRIMARY KEY CHECK (site_id ~ '^[a-z0-9-]{2,60}$'),
    name        text NOT NULL,
    site_type   text NOT NULL DEFAULT 'unknown'
                CHECK (site_type IN ('traffic', 'background', 'industrial', 'school',
                                     'kindergarten', 'care-home', 'residential', 'reference',
                                     'unknown')),
    lat         double precision CHECK (lat BETWEEN -90 AND 90),
    lon         double precision CHECK (lon BETWEEN -180 AND 180),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A device is one edge box + sensor; it appears on first contact.
CREATE TABLE devices (
    device_id      text PRIMARY KEY,
    sensor_model   text NOT NULL,
    sensor_serial  text,
    agent_version  text,
    first_seen     timestamptz NOT NULL DEFAULT now(),
    last_seen      timestamptz NOT NULL DEFAULT now()
);

-- Which device measured at which site, when: a site's series survives a hardware swap.
CREATE TABLE deployments (
    deployment_id  bigserial PRIMARY KEY,
    site_id        text NOT NULL REFERENCES sites (site_id),
    device_id      text NOT NULL REFERENCES devices (device_id),
    valid_from     timestamptz NOT NULL,
    valid_to       timestamptz,
    note           text,
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);
CREATE INDEX deployments_device_idx ON deployments (device_id, valid_from);
CREATE INDEX deployments_site_idx ON deployments (site_id, valid_from);

-- Exactly-once ledger: one row per (device, seq) ever accepted. A plain table on purpose:
-- a hypertable cannot enforce a unique key that leaves out its time column.
CREATE TABLE reading_keys (
    device_id    text NOT NULL,
    seq          bigint NOT NULL,
    ts           timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, seq)
);

CREATE TABLE readings (
    device_id      text NOT NULL,
    seq            bigint NOT NULL,
    ts             timestamptz NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    window_s       real NOT NULL,
    n_samples      integer NOT NULL,
    sensor_model   text NOT NULL,
    sensor_serial  text,
    pm1_ugm3       real,
    pm25_ugm3      real,
    pm10_ugm3      real,
    no2_ppb        real,
    temperature_c  real,
    rh_pct         real,
    extra          jsonb,
    flags          bigint NOT NULL DEFAULT 0,
    schema_version smallint NOT NULL
);
CREATE INDEX readings_device_ts_idx ON readings (device_id, ts DESC);

-- Every rejected payload, verbatim, with its reason; replayable after a fix.
CREATE TABLE quarantine (
    quarantine_id  bigserial PRIMARY KEY,
    received_at    timestamptz NOT NULL DEFAULT now(),
    source         text NOT NULL,          -- 'mqtt', 'api', ...
    topic          text,
    payload        bytea NOT NULL,
    reason         text NOT NULL,          -- machine code: not_json, invalid, ...
    detail         text NOT NULL,          -- human-readable message
    replayed_at    timestamptz
);
CREATE INDEX quarantine_received_idx ON quarantine (received_at);
