-- rds-lambda-lab: what every lab DB instance starts with (run once, as rdsadmin, when the
-- template cluster is built). Statements are separated by lines holding only ';;'.
--
-- Roles as on RDS for PostgreSQL: the master user is created per instance and made a member of
-- rds_superuser; it is not a PostgreSQL superuser.
CREATE ROLE rds_superuser NOLOGIN CREATEDB CREATEROLE
;;
DO $$
DECLARE r text;
BEGIN
    -- the predefined roles RDS gives rds_superuser (those this PostgreSQL version has)
    FOR r IN SELECT rolname FROM pg_roles WHERE rolname IN ('pg_monitor', 'pg_signal_backend',
        'pg_read_all_settings', 'pg_read_all_stats', 'pg_stat_scan_tables', 'pg_checkpoint',
        'pg_create_subscription', 'pg_use_reserved_connections') LOOP
        EXECUTE format('GRANT %I TO rds_superuser WITH ADMIN OPTION', r);
    END LOOP;
END $$
;;
CREATE ROLE rds_replication NOLOGIN
;;
CREATE ROLE rds_password NOLOGIN
;;
CREATE ROLE rds_iam NOLOGIN
;;
-- RDS keeps its own database, rdsadmin, that customers cannot connect to; the lab keeps the
-- SQL->Lambda request outbox (the invocation log) there.
CREATE DATABASE rdsadmin
;;
REVOKE ALL ON DATABASE rdsadmin FROM PUBLIC
;;
REVOKE ALL ON DATABASE template1 FROM PUBLIC
;;
\connect rdsadmin
CREATE SCHEMA lab
;;
CREATE TABLE lab.invocations (
    id               bigserial PRIMARY KEY,
    requested_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    database_name    text,
    user_name        text,
    backend_pid      int,
    function_name    text NOT NULL,
    region           text,
    qualifier        text,
    invocation_type  text NOT NULL,
    log_type         text NOT NULL,
    payload          text,
    client_context   text,
    connect_timeout_ms int,
    endpoint_override  text,
    waiting          boolean NOT NULL DEFAULT true,      -- a session waits for the reply
    state            text NOT NULL DEFAULT 'pending',   -- pending | running | done | failed | expired
    function_arn     text,
    status_code      int,
    response         text,
    function_error   text,
    executed_version text,
    log_result       text,
    error_message    text,
    error_detail     text,
    completed_at     timestamptz,
    wal_lsn          pg_lsn UNIQUE                      -- Event requests relayed from the WAL
)
;;
CREATE INDEX invocations_pending ON lab.invocations (id) WHERE state = 'pending'
;;
-- The Event fast path (see rdslab/bridge_wal.py): Event requests travel as non-transactional
-- logical decoding messages in the WAL, which the agent reads with pg_walinspect from here
-- (WAL is cluster-wide: one reader sees every database). The physical slot keeps that WAL
-- until the agent has relayed it into lab.invocations.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_walinspect;
    PERFORM pg_create_physical_replication_slot('rdslab_bridge', true);
EXCEPTION WHEN OTHERS THEN
    -- PostgreSQL < 15 has no pg_walinspect: verified Events then go through the outbox (and
    -- no slot keeps WAL that nobody reads)
    RAISE NOTICE 'pg_walinspect is not available: %', SQLERRM;
END $$
