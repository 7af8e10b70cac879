-- 0002: TimescaleDB where available. Without the extension this is a no-op and the same
-- schema on plain PostgreSQL gives identical query results.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        PERFORM create_hypertable('readings', 'ts',
                                  chunk_time_interval => interval '7 days',
                                  if_not_exists => true, migrate_data => true);
        RAISE NOTICE 'luftnett: readings is a TimescaleDB hypertable';
    ELSE
        RAISE NOTICE 'luftnett: timescaledb not available, readings stays a plain table';
    END IF;
END
$$;
