-- 0005: device-hours whose rollups wait for a refresh. The collector marks them in the batch's
-- own transaction and refreshes them a few seconds later (several collectors share the work
-- with FOR UPDATE SKIP LOCKED), so a SIGKILL between the two loses no refresh.
CREATE TABLE rollup_dirty (
    device_id   text NOT NULL,
    hour_start  timestamptz NOT NULL,
    marked_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, hour_start)
);
