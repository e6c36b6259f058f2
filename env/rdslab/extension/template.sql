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
    completed_at     timestamptz
)
;;
CREATE INDEX invocations_pending ON lab.invocations (id) WHERE state = 'pending'
;;
-- Verdicts of the IAM/network checks for (database, function) that let an Event invoke return
-- 202 without a round trip to the agent. The lab empties it whenever IAM, EC2, RDS or Lambda
-- state changes.
CREATE TABLE lab.access_ok (
    function_name text NOT NULL,
    region        text NOT NULL DEFAULT '',
    qualifier     text NOT NULL DEFAULT '',
    PRIMARY KEY (function_name, region, qualifier)
)
