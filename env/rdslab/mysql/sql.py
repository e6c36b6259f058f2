"""The SQL of the Aurora MySQL emulation: template setup, per-instance and per-database objects.

Kept in Python (not ``.sql`` files) so that a non-editable install ships it without package-data
entries. Statements are plain strings, one per list item, so no ``DELIMITER`` is needed.

Objects (all owned by the internal user ``rdsadmin``@``127.0.0.1``, as RDS keeps its own):

* role ``AWS_LAMBDA_ACCESS`` (Aurora MySQL v3's privilege for the native functions);
* database ``rdsadmin`` (no grants for learners): the request outbox ``lambda_requests`` (Aria,
  ``TRANSACTIONAL=0``: a request survives the caller's ROLLBACK, as an Aurora invoke does), the
  access cache ``lambda_access``, and FederatedX twins ``*_fx`` that point back at the same server
  (a loopback connection per session, MariaDB's counterpart of dblink: the stored function reads
  and writes through it, so the agent can answer while the caller's statement holds its locks);
* ``rdsadmin.lambda_invoke``: the internal function, EXECUTE granted to ``AWS_LAMBDA_ACCESS``
  only, so MariaDB's own privilege check (active roles included) decides who may invoke;
* in every learner database: ``lambda_sync``, ``lambda_async`` and ``aurora_version`` (MariaDB
  has no global namespace for stored functions), SQL SECURITY INVOKER, EXECUTE to PUBLIC, which
  turn the missing-privilege error into Aurora's ``ERROR 1227 (42000)``;
* ``mysql.lambda_async``: the deprecated stored procedure (callers need EXECUTE on it).
"""

from __future__ import annotations

ADMIN = "'rdsadmin'@'127.0.0.1'"
LOOP_USER = "rdslab_loop"
ROLE = "AWS_LAMBDA_ACCESS"
AGENT_LOCK = "rdslab_agent"  # held by the lab's agent connection while it serves requests
SYSTEM_DATABASES = frozenset(
    {"mysql", "information_schema", "performance_schema", "sys", "rdsadmin"}
)
# Aurora MySQL v3 (documented, aws-fidelity §3)
ACCESS_DENIED = (
    "Access denied; you need (at least one of) the Invoke Lambda privilege(s) for this operation"
)
NETWORK_ERROR = "Lambda API returned error: Network Connection. Unable to connect to endpoint"

REQUEST_COLUMNS = """
    id               BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    token            CHAR(36) NOT NULL,
    requested_at     DATETIME(6) NULL,
    database_name    VARCHAR(64) NULL,
    user_name        VARCHAR(300) NULL,
    connection_id    BIGINT NULL,
    function_name    TEXT NULL,
    payload          LONGBLOB NULL,
    invocation_type  VARCHAR(16) NOT NULL,
    waiting          TINYINT NOT NULL DEFAULT 1,
    state            VARCHAR(16) NOT NULL DEFAULT 'pending',
    function_arn     TEXT NULL,
    status_code      INT NULL,
    response         LONGBLOB NULL,
    error_code       INT NULL,
    error_message    VARCHAR(512) NULL,
    completed_at     DATETIME(6) NULL,
    UNIQUE KEY token (token),
    KEY state (state)"""
ACCESS_COLUMNS = """
    function_name VARCHAR(512) NOT NULL PRIMARY KEY"""


def template_setup(admin_password: str, loop_password: str) -> list[str]:
    """Run once per template, as root over the setup socket (networking off)."""
    return [
        f"CREATE USER {ADMIN} IDENTIFIED BY '{admin_password}'",
        f"GRANT ALL PRIVILEGES ON *.* TO {ADMIN} WITH GRANT OPTION",
        f"CREATE ROLE {ROLE} WITH ADMIN {ADMIN}",
        "CREATE DATABASE rdsadmin",
        f"CREATE TABLE rdsadmin.lambda_requests ({REQUEST_COLUMNS}\n)"
        " ENGINE=Aria TRANSACTIONAL=0 COMMENT='rds-lambda-lab: lambda_sync/lambda_async outbox'",
        f"CREATE TABLE rdsadmin.lambda_access ({ACCESS_COLUMNS}\n)"
        " ENGINE=Aria TRANSACTIONAL=0 COMMENT='rds-lambda-lab: verified IAM/network paths'",
        f"CREATE USER '{LOOP_USER}'@'127.0.0.1' IDENTIFIED BY '{loop_password}'",
        f"GRANT SELECT, INSERT ON rdsadmin.lambda_requests TO '{LOOP_USER}'@'127.0.0.1'",
        f"GRANT SELECT ON rdsadmin.lambda_access TO '{LOOP_USER}'@'127.0.0.1'",
        # the loopback tables are created per instance (their CONNECTION names its port)
        f"CREATE TABLE rdsadmin.lambda_requests_fx ({REQUEST_COLUMNS}\n) ENGINE=Aria",
        f"CREATE TABLE rdsadmin.lambda_access_fx ({ACCESS_COLUMNS}\n) ENGINE=Aria",
        INVOKE_FUNCTION,
        f"GRANT EXECUTE ON FUNCTION rdsadmin.lambda_invoke TO {ROLE}",
        lambda_async_procedure(None),
    ]


def drop_bootstrap_users(users: list[tuple[str, str]]) -> list[str]:
    """mariadb-install-db's password-less root accounts must not survive into the template."""
    return [f"DROP USER '{u}'@'{h}'" for u, h in users if u in {"root", "mysql", ""}]


INVOKE_FUNCTION = f"""
CREATE DEFINER={ADMIN} FUNCTION rdsadmin.lambda_invoke(
    p_function TEXT, p_payload LONGBLOB, p_type VARCHAR(16), p_db VARCHAR(64))
RETURNS LONGBLOB
MODIFIES SQL DATA SQL SECURITY DEFINER
COMMENT 'rds-lambda-lab: hands one invoke to the lab agent and waits for its answer'
BEGIN
    DECLARE v_token CHAR(36) DEFAULT UUID();
    DECLARE v_fast INT DEFAULT 0;
    DECLARE v_state VARCHAR(16);
    DECLARE v_response LONGBLOB;
    DECLARE v_errno INT;
    DECLARE v_message VARCHAR(512);
    DECLARE v_nap DOUBLE DEFAULT 0.0002;
    -- Lambda's longest timeout (15 min) plus the SDK's margin: the agent answers long before
    DECLARE v_deadline DATETIME(6) DEFAULT NOW(6) + INTERVAL 905 SECOND;
    -- Lambda rejects a body that is not JSON for every invocation type, so only a valid
    -- payload may take the fast path (the agent answers the others with the API error)
    IF p_type = 'Event' AND OCTET_LENGTH(p_payload) <= 1048576 AND JSON_VALID(p_payload) THEN
        -- access already verified for this function: Lambda queues the event, nobody waits
        SELECT COUNT(*) INTO v_fast FROM rdsadmin.lambda_access_fx
         WHERE function_name = p_function;
    END IF;
    IF v_fast = 0 AND IS_USED_LOCK('{AGENT_LOCK}') IS NULL THEN
        -- nobody serves the Lambda endpoint: fail at once rather than wait
        SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = 1873, MESSAGE_TEXT = '{NETWORK_ERROR}';
    END IF;
    -- through the loopback table: written by another connection, so it is committed at once
    INSERT INTO rdsadmin.lambda_requests_fx (token, requested_at, database_name, user_name,
        connection_id, function_name, payload, invocation_type, waiting, state)
    VALUES (v_token, NOW(6), p_db, USER(), CONNECTION_ID(), p_function, p_payload, p_type,
        v_fast = 0, 'pending');
    IF v_fast > 0 THEN
        RETURN NULL;
    END IF;
    LOOP
        DO SLEEP(v_nap);
        SELECT state, response, error_code, error_message
          INTO v_state, v_response, v_errno, v_message
          FROM rdsadmin.lambda_requests_fx WHERE token = v_token;
        IF v_state = 'done' THEN
            RETURN v_response;
        END IF;
        IF v_state = 'failed' THEN
            SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = v_errno, MESSAGE_TEXT = v_message;
        END IF;
        IF IS_USED_LOCK('{AGENT_LOCK}') IS NULL THEN
            -- the agent went away while this call waited
            SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = 1873, MESSAGE_TEXT = '{NETWORK_ERROR}';
        END IF;
        IF NOW(6) > v_deadline THEN
            SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = 1873,
                MESSAGE_TEXT = 'Lambda API returned error: Request Timeout. Timeout was reached';
        END IF;
        SET v_nap = LEAST(v_nap * 2, 0.004);
    END LOOP;
END"""


def lambda_async_procedure(warning: str | None) -> str:
    """``mysql.lambda_async``: deprecated on AWS; ``warning`` is raised as a SQL warning."""
    warn = ""
    if warning:
        warn = f"    SIGNAL SQLSTATE '01000' SET MESSAGE_TEXT = '{_literal(warning)}';\n"
    return f"""
CREATE OR REPLACE DEFINER={ADMIN} PROCEDURE mysql.lambda_async(
    IN lambda_function_ARN TEXT, IN lambda_function_input LONGTEXT)
MODIFIES SQL DATA SQL SECURITY DEFINER
COMMENT 'Aurora MySQL mysql.lambda_async (deprecated), emulated by rds-lambda-lab'
BEGIN
    DO rdsadmin.lambda_invoke(lambda_function_ARN, lambda_function_input, 'Event', NULL);
{warn}END"""


def instance_setup(port: int, loop_password: str) -> list[str]:
    """Per instance: the loopback tables point at this server's own port."""
    url = f"mysql://{LOOP_USER}:{loop_password}@127.0.0.1:{port}/rdsadmin"
    return [
        f"CREATE OR REPLACE TABLE rdsadmin.lambda_requests_fx ({REQUEST_COLUMNS}\n)"
        f" ENGINE=FEDERATED CONNECTION='{url}/lambda_requests'",
        f"CREATE OR REPLACE TABLE rdsadmin.lambda_access_fx ({ACCESS_COLUMNS}\n)"
        f" ENGINE=FEDERATED CONNECTION='{url}/lambda_access'",
    ]


def master_user(user: str, password: str) -> list[str]:
    """Aurora MySQL v3's master user, as close as MariaDB's grants allow.

    Every database (``%``) but two: an exact-name grant shadows the wildcard one (MariaDB uses
    the first, most specific match), so the master user may only read ``mysql`` and has
    nothing but SHOW VIEW in ``rdsadmin``. No global EXECUTE (it would open
    ``rdsadmin.lambda_invoke`` without the role) and no SET USER (DEFINER = another account).
    """
    account = f"'{_literal(user)}'@'%'"
    return [
        f"CREATE USER {account} IDENTIFIED BY '{_literal(password)}'",
        f"GRANT ALL PRIVILEGES ON `%`.* TO {account} WITH GRANT OPTION",
        f"GRANT SELECT ON `mysql`.* TO {account}",
        f"GRANT SHOW VIEW ON `rdsadmin`.* TO {account}",
        "GRANT CREATE USER, PROCESS, RELOAD, SHOW DATABASES, REPLICATION CLIENT, "
        f"REPLICATION SLAVE ON *.* TO {account} WITH GRANT OPTION",
        f"GRANT {ROLE} TO {account} WITH ADMIN OPTION",
        f"GRANT EXECUTE ON PROCEDURE mysql.lambda_async TO {account} WITH GRANT OPTION",
    ]


def database_functions(database: str, aurora_version: str) -> list[str]:
    """The native functions of Aurora MySQL, created in one learner database."""
    db = "`" + database.replace("`", "``") + "`"
    handler = (
        "    DECLARE EXIT HANDLER FOR 1370 SIGNAL SQLSTATE '42000' "
        f"SET MYSQL_ERRNO = 1227, MESSAGE_TEXT = '{ACCESS_DENIED}';\n"
    )
    out: list[str] = []
    for name, kind in (("lambda_sync", "RequestResponse"), ("lambda_async", "Event")):
        out.append(
            f"""CREATE OR REPLACE DEFINER={ADMIN} FUNCTION {db}.`{name}`(
    lambda_function_ARN TEXT, JSON_payload LONGTEXT)
RETURNS LONGBLOB
MODIFIES SQL DATA SQL SECURITY INVOKER
COMMENT 'Aurora MySQL native function {name}, emulated by rds-lambda-lab'
BEGIN
{handler}    RETURN rdsadmin.lambda_invoke(lambda_function_ARN, JSON_payload, '{kind}', DATABASE());
END"""
        )
        out.append(f"GRANT EXECUTE ON FUNCTION {db}.`{name}` TO PUBLIC")
    out.append(
        f"""CREATE OR REPLACE DEFINER={ADMIN} FUNCTION {db}.`aurora_version`() RETURNS VARCHAR(32)
DETERMINISTIC NO SQL SQL SECURITY INVOKER
COMMENT 'Aurora MySQL native function aurora_version, emulated by rds-lambda-lab'
RETURN '{_literal(aurora_version)}'"""
    )
    out.append(f"GRANT EXECUTE ON FUNCTION {db}.`aurora_version` TO PUBLIC")
    return out


MISSING_FUNCTIONS = """
SELECT s.SCHEMA_NAME FROM information_schema.SCHEMATA s
 WHERE s.SCHEMA_NAME NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys',
                             'rdsadmin')
   AND (SELECT COUNT(*) FROM information_schema.ROUTINES r
         WHERE r.ROUTINE_SCHEMA = s.SCHEMA_NAME AND r.ROUTINE_TYPE = 'FUNCTION'
           AND r.ROUTINE_NAME IN ('lambda_sync', 'lambda_async', 'aurora_version')
           AND r.SECURITY_TYPE = 'INVOKER' AND r.DEFINER = 'rdsadmin@127.0.0.1') < 3
"""  # also catches a function dropped, replaced or ALTERed to SQL SECURITY DEFINER


def _literal(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "''")
