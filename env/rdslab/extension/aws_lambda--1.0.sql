-- rds-lambda-lab emulation of RDS's aws_lambda extension.
--
-- Public objects are exactly RDS's: four aws_lambda.invoke overloads (TEXT or composite function
-- name x JSON or JSONB). They are LANGUAGE sql like RDS's, so errors read
-- 'SQL function "invoke" statement 1'. Only rds_superuser may call them until the master user
-- runs RDS's two GRANT statements.
--
-- Implementation (lab only, not on RDS): schema rdslab_bridge, with no grants, holds the few
-- dblink C functions the bridge needs (declared here so that no dblink extension appears in
-- \dx) and the PL/pgSQL that writes each request into the rdsadmin database's outbox through
-- a loopback connection (an autonomous commit: an Event invoke reaches Lambda even if the
-- caller's transaction rolls back, as on RDS) and waits for the lab's agent to answer.
-- An Event whose access the agent has already verified takes a fast path instead: it is written
-- to the WAL as a non-transactional logical message (also kept on rollback), which the agent
-- reads from rdsadmin with pg_walinspect (rdslab/bridge_wal.py).
\echo Use "CREATE EXTENSION aws_lambda CASCADE" to load this file. \quit

CREATE SCHEMA rdslab_bridge;
REVOKE ALL ON SCHEMA rdslab_bridge FROM PUBLIC;

CREATE FUNCTION rdslab_bridge.dblink_connect(text, text) RETURNS text
    AS '$libdir/dblink', 'dblink_connect' LANGUAGE C STRICT;
CREATE FUNCTION rdslab_bridge.dblink_disconnect(text) RETURNS text
    AS '$libdir/dblink', 'dblink_disconnect' LANGUAGE C STRICT;
CREATE FUNCTION rdslab_bridge.dblink(text, text) RETURNS SETOF record
    AS '$libdir/dblink', 'dblink_record' LANGUAGE C STRICT;
CREATE FUNCTION rdslab_bridge.dblink_exec(text, text) RETURNS text
    AS '$libdir/dblink', 'dblink_exec' LANGUAGE C STRICT;
CREATE FUNCTION rdslab_bridge.dblink_get_notify(conname text, OUT notify_name text,
    OUT be_pid int4, OUT extra text) RETURNS SETOF record
    AS '$libdir/dblink', 'dblink_get_notify' LANGUAGE C STRICT;
CREATE FUNCTION rdslab_bridge.dblink_get_connections() RETURNS text[]
    AS '$libdir/dblink', 'dblink_get_connections' LANGUAGE C;

-- The loopback connection to this server's rdsadmin database (password from the server's
-- PGPASSFILE, which only the server process can read), opened once per session.
CREATE FUNCTION rdslab_bridge.connect(reconnect boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF reconnect THEN
        BEGIN
            PERFORM rdslab_bridge.dblink_disconnect('rdslab_bridge');
        EXCEPTION WHEN OTHERS THEN NULL;
        END;
    ELSIF 'rdslab_bridge' = ANY (coalesce(rdslab_bridge.dblink_get_connections(), '{}')) THEN
        RETURN;
    END IF;
    PERFORM rdslab_bridge.dblink_connect('rdslab_bridge', format(
        'host=127.0.0.1 port=%s dbname=rdsadmin user=rdsadmin application_name=rdslab-bridge connect_timeout=2',
        current_setting('port')));
    PERFORM rdslab_bridge.dblink_exec('rdslab_bridge', 'LISTEN rdslab_reply_' || pg_backend_pid());
    -- prepared once per session: the request is one EXECUTE, parsed and planned once
    PERFORM rdslab_bridge.dblink_exec('rdslab_bridge', $p$
        PREPARE rdslab_request(text, text, text, text, text, text, text, text, text, int, int, text,
                               boolean) AS
        WITH fast AS (
            -- $13: an Event whose access was already verified (where the WAL path is not
            -- available): nobody waits for it, and the agent picks it up on its next poll
            SELECT $13 AS yes),
        ins AS (
            INSERT INTO lab.invocations (function_name, payload, region, invocation_type,
                log_type, client_context, qualifier, database_name, user_name, backend_pid,
                connect_timeout_ms, endpoint_override, waiting)
            SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NOT fast.yes FROM fast
            RETURNING id, waiting)
        SELECT id, NOT waiting,
               CASE WHEN waiting THEN pg_notify('rdslab_invoke', id::text) END IS NULL
          FROM ins$p$);
    -- nobody serves the Lambda endpoint: withdraw the request (the caller fails at once)
    PERFORM rdslab_bridge.dblink_exec('rdslab_bridge', $p$
        PREPARE rdslab_withdraw(bigint) AS
        UPDATE lab.invocations SET state = 'expired', error_message = 'no agent'
         WHERE id = $1 AND state = 'pending'
           AND NOT EXISTS (SELECT 1 FROM pg_stat_activity
                           WHERE application_name = 'rdslab-agent' AND datname = 'rdsadmin')
        RETURNING id$p$);
END $$;

-- The entry point. An Event within Lambda's 1 MB async limit, for a function whose access (role,
-- policy, network path) the agent has already verified, is written to the WAL as a
-- non-transactional logical message: Lambda has queued it, 202 at once, and it stays queued
-- whatever this transaction does next. The agent lists verified functions in the server setting
-- rdslab.lambda_access, emptied whenever IAM, EC2, RDS or Lambda state changes, so a revoked
-- permission is seen by the very next invoke. The fast path comes first and the rest sits in an
-- inner block on purpose: PL/pgSQL sets up each expression it evaluates (and each variable
-- initialiser) again in every transaction, and an Event trigger fires in many.
CREATE FUNCTION rdslab_bridge.call(
    fn text, body text, region text, invocation_type text, log_type text, context text,
    qualifier text,
    OUT status_code int, OUT response text, OUT executed_version text, OUT log_result text)
LANGUAGE plpgsql AS $$
BEGIN
    IF invocation_type = 'Event' AND log_type IN ('None', 'Tail')
       AND octet_length(body) <= 1048576
       AND coalesce(current_setting('aws_lambda.endpoint_override', true), '') = ''
       AND strpos(current_setting('rdslab.lambda_access', true), '|wal' || E'\t' || fn
                  || E'\t' || coalesce(region, '') || E'\t' || coalesce(qualifier, '') || '|') > 0
    THEN
        PERFORM pg_logical_emit_message(false, 'rdslab_invoke',
            json_build_array(current_setting('server_encoding'), fn, region, qualifier, log_type,
                context, current_database(),
                session_user, pg_backend_pid(),
                coalesce(nullif(current_setting('aws_lambda.connect_timeout_ms', true), '')::int, 1000),
                current_setting('aws_lambda.endpoint_override', true))::text
            || E'\n' || body);
        status_code := 202;
        RETURN;
    END IF;
    -- every other invoke: a request row in the outbox, and (unless it is an Event already
    -- verified) a wait for the agent's answer
    DECLARE
        request_sql text;
        req_id bigint;
        fast_ok boolean;
        request_ms int := coalesce(nullif(current_setting('aws_lambda.request_timeout_ms', true), '')::int, 3000);
        connect_ms int := coalesce(nullif(current_setting('aws_lambda.connect_timeout_ms', true), '')::int, 1000);
        deadline timestamptz;
        nap float8 := 0.0001;
        r record;
        verified boolean := false;
    BEGIN
        IF invocation_type IS NULL OR invocation_type NOT IN ('RequestResponse', 'Event', 'DryRun') THEN
            RAISE EXCEPTION 'invoke API failed' USING DETAIL = format(
                'AWS Lambda client returned ''1 validation error detected: Value ''%s'' at ''invocationType'' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]''.',
                invocation_type);
        END IF;
        IF log_type IS NULL OR log_type NOT IN ('None', 'Tail') THEN
            RAISE EXCEPTION 'invoke API failed' USING DETAIL = format(
                'AWS Lambda client returned ''1 validation error detected: Value ''%s'' at ''logType'' failed to satisfy constraint: Member must satisfy enum value set: [None, Tail]''.',
                log_type);
        END IF;
        IF invocation_type = 'Event' AND octet_length(body) <= 1048576 THEN
            -- verified, but pg_walinspect is missing: the request goes through the outbox, and
            -- nobody waits for the agent
            verified := coalesce(strpos(current_setting('rdslab.lambda_access', true),
                '|dblink' || E'\t' || fn || E'\t' || coalesce(region, '') || E'\t'
                || coalesce(qualifier, '') || '|') > 0, false);
        END IF;
        request_sql := format('EXECUTE rdslab_request(%L, %L, %L, %L, %L, %L, %L, %L, %L, %s, %s, %L, %L)',
            fn, body, region, invocation_type, log_type, context, qualifier,
            current_database(), session_user, pg_backend_pid(), connect_ms,
            current_setting('aws_lambda.endpoint_override', true), verified);

        PERFORM rdslab_bridge.connect();
        BEGIN
            SELECT t.id, t.ok INTO req_id, fast_ok
              FROM rdslab_bridge.dblink('rdslab_bridge', request_sql) AS t(id bigint, ok boolean, n boolean);
        EXCEPTION WHEN OTHERS THEN
            -- the loopback connection died (server restart, terminated backend): open it again once
            PERFORM rdslab_bridge.connect(true);
            SELECT t.id, t.ok INTO req_id, fast_ok
              FROM rdslab_bridge.dblink('rdslab_bridge', request_sql) AS t(id bigint, ok boolean, n boolean);
        END;

        IF fast_ok THEN
            -- access already verified for this function and the payload is within Lambda's async
            -- limit (1 MB): Lambda has queued the event and answers 202 (if the lab's agent is
            -- away, the request waits in the outbox and is delivered when it is back)
            status_code := 202;
            RETURN;
        END IF;
        IF EXISTS (SELECT 1 FROM rdslab_bridge.dblink('rdslab_bridge',
                   'EXECUTE rdslab_withdraw(' || req_id || ')') AS t(id bigint)) THEN
            -- nobody serves the Lambda endpoint: fail at once rather than wait for a timeout
            RAISE EXCEPTION 'invoke API failed'
                USING DETAIL = 'AWS Lambda client returned ''Unable to connect to endpoint''.';
        END IF;

        -- the connection itself is immediate in the lab when a path exists (the agent answers a
        -- missing path after connect_timeout_ms), so the wait is bounded by the longer of the two
        deadline := clock_timestamp()
            + make_interval(secs => (greatest(request_ms, connect_ms) + 50) / 1000.0);
        LOOP
            EXIT WHEN EXISTS (SELECT 1 FROM rdslab_bridge.dblink_get_notify('rdslab_bridge') n
                              WHERE n.extra = req_id::text);
            IF clock_timestamp() >= deadline THEN
                -- The AWS C++ SDK's curl transport reports a request timeout this way (the lab's
                -- reading: RDS documents no text for it). Lambda may still be running the function.
                RAISE EXCEPTION 'invoke API failed'
                    USING DETAIL = 'AWS Lambda client returned ''curlCode: 28, Timeout was reached''.';
            END IF;
            PERFORM pg_sleep(nap);
            nap := least(nap * 2, 0.005);
        END LOOP;

        SELECT * INTO r FROM rdslab_bridge.dblink('rdslab_bridge',
            'SELECT status_code, response, executed_version, log_result, error_message, error_detail'
            ' FROM lab.invocations WHERE id = ' || req_id)
            AS t(status_code int, response text, executed_version text, log_result text,
                 error_message text, error_detail text);
        IF r.error_message IS NOT NULL THEN
            RAISE EXCEPTION USING MESSAGE = r.error_message, DETAIL = r.error_detail;
        END IF;
        status_code := r.status_code;
        response := r.response;
        executed_version := r.executed_version;
        log_result := r.log_result;
    END;
END $$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA rdslab_bridge FROM PUBLIC;

-- ---------------------------------------------------------------- RDS's public interface
CREATE FUNCTION aws_lambda.invoke(
    IN function_name TEXT,
    IN payload JSON,
    IN region TEXT DEFAULT NULL,
    IN invocation_type TEXT DEFAULT 'RequestResponse',
    IN log_type TEXT DEFAULT 'None',
    IN context JSON DEFAULT NULL,
    IN qualifier VARCHAR(128) DEFAULT NULL,
    OUT status_code INT,
    OUT payload JSON,
    OUT executed_version TEXT,
    OUT log_result TEXT)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT c.status_code, c.response::json, c.executed_version, c.log_result
      FROM rdslab_bridge.call($1, $2::text, $3, $4, $5, $6::text, $7::text) c
$$;

CREATE FUNCTION aws_lambda.invoke(
    IN function_name TEXT,
    IN payload JSONB,
    IN region TEXT DEFAULT NULL,
    IN invocation_type TEXT DEFAULT 'RequestResponse',
    IN log_type TEXT DEFAULT 'None',
    IN context JSONB DEFAULT NULL,
    IN qualifier VARCHAR(128) DEFAULT NULL,
    OUT status_code INT,
    OUT payload JSONB,
    OUT executed_version TEXT,
    OUT log_result TEXT)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT c.status_code, c.response::jsonb, c.executed_version, c.log_result
      FROM rdslab_bridge.call($1, $2::text, $3, $4, $5, $6::text, $7::text) c
$$;

CREATE FUNCTION aws_lambda.invoke(
    IN function_name aws_commons._lambda_function_arn_1,
    IN payload JSON,
    IN invocation_type TEXT DEFAULT 'RequestResponse',
    IN log_type TEXT DEFAULT 'None',
    IN context JSON DEFAULT NULL,
    IN qualifier VARCHAR(128) DEFAULT NULL,
    OUT status_code INT,
    OUT payload JSON,
    OUT executed_version TEXT,
    OUT log_result TEXT)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT c.status_code, c.response::json, c.executed_version, c.log_result
      FROM rdslab_bridge.call(($1).function_name, $2::text, ($1).region, $3, $4, $5::text,
                              $6::text) c
$$;

CREATE FUNCTION aws_lambda.invoke(
    IN function_name aws_commons._lambda_function_arn_1,
    IN payload JSONB,
    IN invocation_type TEXT DEFAULT 'RequestResponse',
    IN log_type TEXT DEFAULT 'None',
    IN context JSONB DEFAULT NULL,
    IN qualifier VARCHAR(128) DEFAULT NULL,
    OUT status_code INT,
    OUT payload JSONB,
    OUT executed_version TEXT,
    OUT log_result TEXT)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT c.status_code, c.response::jsonb, c.executed_version, c.log_result
      FROM rdslab_bridge.call(($1).function_name, $2::text, ($1).region, $3, $4, $5::text,
                              $6::text) c
$$;

-- As on RDS: only rds_superuser may invoke until the master user grants it to others with
--   GRANT USAGE ON SCHEMA aws_lambda TO <user>;
--   GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA aws_lambda TO <user>;
REVOKE ALL ON SCHEMA aws_lambda FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA aws_lambda FROM PUBLIC;
GRANT USAGE ON SCHEMA aws_lambda TO rds_superuser WITH GRANT OPTION;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA aws_lambda TO rds_superuser WITH GRANT OPTION;
