-- 0055: the sensors each device has reported through, and when (the collector keeps it with
-- every batch it stores). A box with a PM sensor and a temperature/RH companion keeps in contact
-- through the companion when its PM sensor dies (an empty window sends nothing): device health
-- lists such a sensor as `sensor_silent` (collector/health.py). A sensor without a serial is
-- kept under ''.
CREATE TABLE IF NOT EXISTS device_sensors (
    device_id       text NOT NULL,
    sensor_model    text NOT NULL,
    sensor_serial   text NOT NULL DEFAULT '',
    first_ts        timestamptz NOT NULL,
    last_ts         timestamptz NOT NULL,
    window_s        real NOT NULL,              -- its readings' window (longest of the latest)
    PRIMARY KEY (device_id, sensor_model, sensor_serial)
);

INSERT INTO device_sensors (device_id, sensor_model, sensor_serial, first_ts, last_ts, window_s)
SELECT device_id, sensor_model, coalesce(sensor_serial, ''), min(ts), max(ts),
       (array_agg(window_s ORDER BY ts DESC))[1]
FROM readings
GROUP BY 1, 2, 3
ON CONFLICT DO NOTHING;
