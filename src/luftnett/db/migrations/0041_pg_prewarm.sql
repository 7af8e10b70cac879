-- 0041: the pg_prewarm extension (PostgreSQL contrib), where the server has it and this user may
-- create it. The API asks it at start-up to prefetch the rollup tables into the page cache
-- (luftnett.api.startup.prewarm); without it the API works the same, only its first requests
-- after a restart read the disk. Nothing else depends on it.
DO $migration$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_prewarm') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_prewarm;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'luftnett: no privilege to create pg_prewarm; the API will not prewarm';
        END;
    ELSE
        RAISE NOTICE 'luftnett: pg_prewarm not available; the API will not prewarm';
    END IF;
END
$migration$;
