-- 0020: the exactly-once ledger as received seq ranges per device, not one row per reading.
-- A row per (device, seq) in reading_keys doubled the server's work per reading (a second
-- b-tree insert); seq_ledger holds, per device, the set of seqs ever stored as an
-- int8multirange ({[0,1440),[1450,2880)}: a few ranges, whatever the count). The writer takes
-- the device's row lock (its devices upsert), reads the ranges that overlap the batch, drops
-- what is in them and adds what it stored, all in the batch's transaction.
-- Plain PostgreSQL 14+ (multiranges); identical on TimescaleDB.
CREATE TABLE seq_ledger (
    device_id   text PRIMARY KEY,
    received    int8multirange NOT NULL DEFAULT '{}',
    updated_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO seq_ledger (device_id, received)
SELECT device_id, range_agg(int8range(seq, seq + 1)) FROM reading_keys GROUP BY device_id;

DROP TABLE reading_keys;

-- The stored keys, for readers of the old table: readings hold (device_id, seq) exactly once.
-- A simple view, so it is updatable (UPDATE reading_keys SET received_at = ... changes readings).
CREATE VIEW reading_keys AS SELECT device_id, seq, ts, received_at FROM readings;
