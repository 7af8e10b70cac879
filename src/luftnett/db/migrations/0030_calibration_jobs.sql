-- 0030: reprocessing jobs. Activating a calibration version queues a job; workers
-- (`luftnett calibrate jobs run`) plan it into parts (one device, one time range) and work each
-- part in one transaction that also marks it done, so a killed worker loses only its
-- uncommitted part, which the next worker redoes: no duplicates, nothing skipped.
CREATE TABLE calibration_jobs (
    job_id         bigserial PRIMARY KEY,
    activation_id  bigint REFERENCES calibration_activations (activation_id),
    version_id     bigint NOT NULL REFERENCES calibration_versions (version_id),
    state          text NOT NULL DEFAULT 'queued'
                   CHECK (state IN ('queued', 'running', 'done', 'failed')),
    readings_total bigint,                      -- known once planned
    error          text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text NOT NULL,
    planned_at     timestamptz,
    finished_at    timestamptz
);
CREATE INDEX calibration_jobs_open_idx ON calibration_jobs (job_id) WHERE state IN ('queued', 'running');

-- A part: the readings of one device in [ts_from, ts_to) whose version in force is the job's.
-- readings = how many there were when planned, estimated per part (progress counts these).
CREATE TABLE calibration_job_parts (
    job_id       bigint NOT NULL REFERENCES calibration_jobs (job_id),
    part_no      integer NOT NULL,
    device_id    text NOT NULL,
    ts_from      timestamptz NOT NULL,
    ts_to        timestamptz NOT NULL,
    readings     bigint NOT NULL,
    state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
    values_written bigint,
    path         text,          -- 'sql', 'sql-skip-existing', 'all-present', 'numpy'
    error        text,
    finished_at  timestamptz,
    PRIMARY KEY (job_id, part_no),
    CHECK (ts_to > ts_from)
);
CREATE INDEX calibration_job_parts_pending_idx ON calibration_job_parts (job_id, part_no)
    WHERE state = 'pending';
