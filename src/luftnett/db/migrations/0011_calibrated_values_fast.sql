-- 0011: make calibrated_values cheaper to fill (reprocessing writes millions of rows).
-- * No foreign key on version_id: a per-row check roughly halved the reprocessing rate, and
--   versions cannot be deleted anyway (trigger of 0010); writers take ids from
--   calibration_versions.
-- * "C" collation on the text key columns: byte-wise comparison keeps the primary key cheap.
--   The view of 0010 depends on the columns, so it is dropped and created again unchanged.
ALTER TABLE calibrated_values DROP CONSTRAINT IF EXISTS calibrated_values_version_id_fkey;
DROP VIEW calibrated_current;
ALTER TABLE calibrated_values
    ALTER COLUMN device_id TYPE text COLLATE "C",
    ALTER COLUMN pollutant TYPE text COLLATE "C";
CREATE VIEW calibrated_current AS
SELECT c.*
FROM calibrated_values c
WHERE c.version_id = luftnett_active_version(c.device_id, c.pollutant, c.ts);
