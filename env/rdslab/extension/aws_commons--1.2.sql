-- rds-lambda-lab emulation of RDS's aws_commons extension (the parts aws_lambda needs).
\echo Use "CREATE EXTENSION aws_commons" to load this file. \quit

CREATE TYPE aws_commons._lambda_function_arn_1 AS (
    function_name text,
    region text
);

CREATE FUNCTION aws_commons.create_lambda_function_arn(
    function_name text,
    region text DEFAULT NULL)
RETURNS aws_commons._lambda_function_arn_1
LANGUAGE sql IMMUTABLE AS
$$ SELECT ROW($1, $2)::aws_commons._lambda_function_arn_1 $$;

GRANT USAGE ON SCHEMA aws_commons TO PUBLIC;
