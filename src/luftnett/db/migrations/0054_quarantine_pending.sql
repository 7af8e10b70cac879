-- 0054: the quarantine records still waiting for a replay, by reason. Device health looks up
-- the pending `seq_reused` records (a device whose numbering started again) on every call;
-- the table also keeps every malformed payload ever received, so it is not scanned whole.
CREATE INDEX IF NOT EXISTS quarantine_pending_reason_idx ON quarantine (reason)
    WHERE replayed_at IS NULL;
