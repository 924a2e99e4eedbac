-- create_migrations_table --
-- The ledger of applied migrations: ours by file name, Procrastinate's as procrastinate/<file>.
CREATE TABLE IF NOT EXISTS schema_migrations (
    name        text PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- lock_migrations --
-- Serialise concurrent `webhooks migrate` runs for the rest of the transaction.
SELECT pg_advisory_xact_lock(hashtext('planomatic-webhooks-migrations'));

-- applied_migrations --
-- Names of every migration already applied.
SELECT name FROM schema_migrations ORDER BY name;

-- record_migration --
-- Mark a migration as applied.
INSERT INTO schema_migrations (name) VALUES (%(name)s) ON CONFLICT (name) DO NOTHING;

-- database_exists --
-- Whether the development database exists on the server.
SELECT 1 FROM pg_database WHERE datname = 'webhooks';

-- create_development_database --
-- The database `webhooks dev` keeps its data in.
CREATE DATABASE webhooks;
