-- 0052: calibration after the commit (collector.calibration = "deferred").
--
-- The collector can store a batch's readings, commit and acknowledge them, and write their
-- calibrated values in a second transaction moments later (luftnett.collector.deferred): the
-- readings are safe as soon as their row is committed, and the calibrated values, which are
-- derived from the row, follow. The first transaction records here what the second owes:
-- each run of consecutive seqs a device's batch stored, with the time span of its readings.
-- The second deletes the rows it calibrated in the same transaction as the values it writes,
-- so a crash in between leaves the rows, and any collector calibrates them later from the
-- stored readings. A (device_id, seq) is stored once (the seq ledger of 0020), so runs never
-- overlap and (device_id, seq_lo) identifies one.
CREATE TABLE calibration_pending (
    device_id  text COLLATE "C" NOT NULL,
    seq_lo     bigint NOT NULL,                -- first seq of the run
    seq_hi     bigint NOT NULL,                -- one past the last
    ts_lo      timestamptz NOT NULL,           -- earliest and latest ts of its readings
    ts_hi      timestamptz NOT NULL,
    queued_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, seq_lo),
    CHECK (seq_lo < seq_hi AND ts_lo <= ts_hi)
);
CREATE INDEX calibration_pending_queued_idx ON calibration_pending (queued_at);
