"""Checks for module 03 (IAM for the database): the role RDS assumes to call Lambda.

Each check reads IAM and RDS through boto3 (``get_role``, the role's inline and attached
policies, ``describe_db_instances`` AssociatedRoles), evaluates the documents the way IAM does
(``rdslab.access.policy``: explicit Deny beats Allow, wildcards, conditions), asks
``lab.explain_path`` for the whole path, and finally makes a real SQL call from the database:
``aws_lambda.invoke(..., 'DryRun')``, which Lambda authorizes without running the function, so
a check changes nothing. "Practice" criteria withhold points for a working but broad answer
(``"Resource": "*"``, ``lambda:*``, ``AWSLambdaRole``, extra actions, other trusted principals).

The helpers ``sql_dry_run`` and ``path_criterion`` are shared with module 04's checks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

from ... import config
from ...access import policy
from ..context import Context, LearnerError
from ..core import Criterion, exercise, practice
from ..practices import broad_grants

ACCOUNT = config.ACCOUNT_ID
REGION = config.REGION
FUNCTION = "welcome-email"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION}"
ACTION = "lambda:InvokeFunction"
SERVICE = "rds.amazonaws.com"

INSTANCE = "signup-db"
USER = "labadmin"
PASSWORD = "Signup-Passw0rd-03"
DBNAME = "course"
ROLE = "rds-invoke-welcome-email"

LEGACY_INSTANCE = "legacy-db"
LEGACY_PASSWORD = "Legacy-Passw0rd-03"

TRUST_HINT = (
    "iam.update_assume_role_policy(RoleName=..., PolicyDocument=json.dumps({'Version': "
    "'2012-10-17', 'Statement': [{'Effect': 'Allow', 'Principal': {'Service': "
    "'rds.amazonaws.com'}, 'Action': 'sts:AssumeRole'}]}))"
)
POLICY_HINT = (
    f"iam.put_role_policy(RoleName=..., PolicyName='invoke-welcome-email', PolicyDocument="
    f"json.dumps({{'Version': '2012-10-17', 'Statement': [{{'Effect': 'Allow', 'Action': "
    f"'{ACTION}', 'Resource': '{FUNCTION_ARN}'}}]}}))"
)
DRY_RUN_SQL = (
    "SELECT status_code FROM aws_lambda.invoke("
    "aws_commons.create_lambda_function_arn(%s, %s), '{}'::json, 'DryRun')"
)


# ---------------------------------------------------------------------------- helpers
def _document(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    text = str(raw)
    return json.loads(unquote(text) if text.startswith("%7B") else text)


def get_role(ctx: Context, name: str, hint: str) -> dict[str, Any]:
    """``iam.get_role`` for ``name``, or a LearnerError saying it does not exist."""
    iam = ctx.client("iam")
    try:
        return dict(iam.get_role(RoleName=name)["Role"])
    except iam.exceptions.NoSuchEntityException:
        raise LearnerError(
            f"IAM role `{name}` (iam.get_role)", f"there is no IAM role named `{name}`", hint
        ) from None


def instance_arn(identifier: str) -> str:
    return f"arn:aws:rds:{REGION}:{ACCOUNT}:db:{identifier}"


def trust_decision(role: dict[str, Any], source_arn: str) -> policy.Decision:
    """Whether the role's trust policy lets rds.amazonaws.com assume it for ``source_arn``."""
    ctx = policy.Context(
        values={"aws:sourcearn": [source_arn], "aws:sourceaccount": [ACCOUNT]},
        known=frozenset({"aws:sourcearn", "aws:sourceaccount"}),
        principal={"Service": [SERVICE]},
    )
    doc = _document(role.get("AssumeRolePolicyDocument") or "{}")
    return policy.evaluate([policy.Source("trust policy", doc)], "sts:AssumeRole", None, ctx)


def trusted_principals(role: dict[str, Any]) -> list[str]:
    """Every principal an Allow statement of the trust policy names (as readable strings)."""
    doc = _document(role.get("AssumeRolePolicyDocument") or "{}")
    found: list[str] = []
    for st in policy.statements(doc):
        if str(st.get("Effect", "")).lower() != "allow":
            continue
        principal = st.get("Principal", st.get("NotPrincipal"))
        if "NotPrincipal" in st:
            found.append(f"NotPrincipal {json.dumps(principal)}")
        elif principal == "*" or not isinstance(principal, dict):
            found.append(json.dumps(principal))
        else:
            for kind, values in principal.items():
                for value in values if isinstance(values, list) else [values]:
                    found.append(f"{kind}: {value}")
    return found


def _invoke_context(role_arn: str) -> policy.Context:
    values = {
        "aws:principalarn": [role_arn],
        "aws:principalaccount": [ACCOUNT],
        "aws:principaltype": ["AssumedRole"],
        "aws:requestedregion": [REGION],
        "aws:securetransport": ["true"],
    }
    return policy.Context(values=values, known=frozenset(values))


def identity_documents(ctx: Context, role_name: str) -> list[tuple[str, dict[str, Any]]]:
    """(label, document) of every permission policy of the role: inline, then attached."""
    iam = ctx.client("iam")
    labelled: list[tuple[str, dict[str, Any]]] = []
    for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        doc = iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
        labelled.append((f"inline policy {name}", _document(doc)))
    for item in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]:
        version = iam.get_policy(PolicyArn=item["PolicyArn"])["Policy"]["DefaultVersionId"]
        doc = iam.get_policy_version(PolicyArn=item["PolicyArn"], VersionId=version)
        labelled.append(
            (f"attached policy {item['PolicyName']}", _document(doc["PolicyVersion"]["Document"]))
        )
    return labelled


def invoke_decision(
    docs: list[tuple[str, dict[str, Any]]], role_arn: str, resource: str = FUNCTION_ARN
) -> policy.Decision:
    sources = [policy.Source(label, doc) for label, doc in docs]
    return policy.evaluate(sources, ACTION, resource, _invoke_context(role_arn))


def _policy_names(docs: list[tuple[str, dict[str, Any]]]) -> str:
    return ", ".join(label for label, _ in docs) or "none"


def broad_problems(docs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """What the permission policies grant beyond lambda:InvokeFunction on the one function."""
    problems: list[str] = []
    for label, doc in docs:
        for text in broad_grants(doc, action=ACTION, resource=FUNCTION_ARN):
            problems.append(f"{label}: {text}")
        for st in policy.statements(doc):
            if str(st.get("Effect", "")).lower() != "allow":
                continue
            if "NotAction" in st or "NotResource" in st:
                problems.append(f"{label}: NotAction/NotResource allows far more than one call")
                continue
            actions = st.get("Action", [])
            for action in actions if isinstance(actions, list) else [actions]:
                if str(action).lower() != ACTION.lower() and "*" not in str(action):
                    problems.append(f'{label}: "Action": "{action}" is not needed to invoke')
    return sorted(set(problems))


def sql_dry_run(
    ctx: Context, identifier: str, password: str, dbname: str = DBNAME
) -> tuple[bool, str]:
    """A real ``aws_lambda.invoke(..., 'DryRun')`` from the instance: (ok, what happened)."""
    import psycopg2

    db = ctx.db_instance(identifier)
    conn = ctx.connect(db, USER, password, dbname)
    try:
        rows = ctx.query(conn, DRY_RUN_SQL, (FUNCTION, REGION))
    except psycopg2.Error as exc:
        detail = f" DETAIL: {exc.diag.message_detail}" if exc.diag.message_detail else ""
        return False, f"ERROR: {exc.diag.message_primary}.{detail}"
    status = rows[0][0] if rows else None
    return status == 204, f"status_code {status}"


def dry_run_criterion(
    ctx: Context, points: float, identifier: str, password: str, dbname: str = DBNAME
) -> Criterion:
    ok, what = sql_dry_run(ctx, identifier, password, dbname)
    looked = f"SQL on {identifier}: aws_lambda.invoke('{FUNCTION}', ..., 'DryRun')"
    return Criterion(
        points,
        f"{looked}: {what}" if ok else looked,
        ok,
        f"the database cannot call {FUNCTION}: {what}",
        f"Install the extension in database `{dbname}` (the setup cell does it): CREATE EXTENSION "
        "IF NOT EXISTS aws_lambda CASCADE."
        if "does not exist" in what
        else f"Read the DETAIL, then run `lab.explain_path('{identifier}', '{FUNCTION}')`: it names "
        "the first missing step and how to add it.",
    )


def path_criterion(
    ctx: Context, points: float, identifier: str, via: str | None = None
) -> tuple[Criterion, Any]:
    """``lab.explain_path(identifier, welcome-email)`` says the call goes through (via ``via``)."""
    explanation = ctx.lab.explain_path(identifier, FUNCTION)
    first = explanation.first_missing
    looked = f"lab.explain_path('{identifier}', '{FUNCTION}'): " + (
        f"reachable via {explanation.path}" if explanation.ok else f"FAILS at {first.step}"
    )
    if not explanation.ok:
        return Criterion(
            points, looked, False, explanation.missing or "", explanation.hint or ""
        ), explanation
    if via is not None and explanation.path != via:
        return Criterion(
            points,
            looked,
            False,
            f"the call goes through the {explanation.path}, not the {via} the task asks for",
            f"Undo the other path and build the {via} (see the task).",
        ), explanation
    return Criterion(points, looked, True), explanation


# ---------------------------------------------------------------------------- 03.1
@exercise("03.1", points=5, title="A role that RDS can assume")
def trust_role(ctx: Context) -> Iterator[Criterion]:
    role = get_role(
        ctx,
        ROLE,
        f"Create it: `iam.create_role(RoleName='{ROLE}', AssumeRolePolicyDocument=json.dumps(trust))`"
        " with the trust policy of the task.",
    )
    yield Criterion(1, f"IAM role `{ROLE}`: {role['Arn']}", True)
    decision = trust_decision(role, instance_arn(INSTANCE))
    principals = trusted_principals(role)
    notes = (" " + " ".join(decision.notes)) if decision.notes else ""
    yield Criterion(
        3,
        f"its trust policy, asked: may {SERVICE} call sts:AssumeRole for {INSTANCE}?",
        decision.allowed,
        f"no: the trust policy {'denies it' if decision.effect == policy.DENY else 'does not allow it'}"
        f" (it trusts: {', '.join(principals) or 'nobody'}).{notes}",
        "The trust policy names who may assume the role: "
        "'Principal': {'Service': 'rds.amazonaws.com'}, 'Action': 'sts:AssumeRole'. "
        f"Fix it with {TRUST_HINT}",
    )
    others = [p for p in principals if p != f"Service: {SERVICE}"]
    yield practice(
        1,
        f"who else the trust policy lets assume the role: {', '.join(others) or 'nobody'}",
        decision.allowed and not others,
        "the role can be assumed by more than RDS: " + ", ".join(others)
        if others
        else "not checked: RDS cannot assume the role yet",
        "Trust only the service that needs the role: one statement with "
        "'Principal': {'Service': 'rds.amazonaws.com'}.",
    )


# ---------------------------------------------------------------------------- 03.2
@exercise("03.2", points=6, title="A least-privilege permission policy")
def permission_policy(ctx: Context) -> Iterator[Criterion]:
    role = get_role(ctx, ROLE, "Exercise 03.2 adds a policy to the role of 03.1: do 03.1 first.")
    docs = identity_documents(ctx, ROLE)
    decision = invoke_decision(docs, role["Arn"])
    notes = (" " + " ".join(decision.notes)) if decision.notes else ""
    if decision.effect == policy.DENY:
        wrong = f"{decision.by} explicitly denies it: an explicit Deny beats every Allow"
        hint = "Remove the Deny statement (iam.delete_role_policy) or narrow it."
    else:
        wrong = (
            f"no permission policy allows it (policies of the role: {_policy_names(docs)}).{notes}"
        )
        hint = (
            f"The trust policy does not grant permissions; a permission policy does: {POLICY_HINT}"
        )
    yield Criterion(
        3,
        f"the permission policies of `{ROLE}`, asked: {ACTION} on {FUNCTION_ARN}?",
        decision.allowed,
        "" if decision.allowed else wrong,
        "" if decision.allowed else hint,
    )
    problems = broad_problems(docs)
    wide = [p for p in problems if "is not needed" not in p]
    extra = [p for p in problems if "is not needed" in p]
    yield practice(
        2,
        f"least privilege: only the ARN of {FUNCTION}, only {ACTION}",
        decision.allowed and not wide,
        "; ".join(wide) if wide else "not checked: the role cannot invoke the function yet",
        f"Name the one function: 'Resource': '{FUNCTION_ARN}' and 'Action': '{ACTION}'. "
        "A managed policy such as AWSLambdaRole (Resource '*') lets the database invoke every "
        "function in the account: detach it with iam.detach_role_policy.",
    )
    yield practice(
        1,
        "no permission beyond invoking",
        decision.allowed and not extra,
        "; ".join(extra) if extra else "not checked: the role cannot invoke the function yet",
        "The database only calls Invoke: drop every other action from the role's policies.",
    )


# ---------------------------------------------------------------------------- 03.3
@exercise("03.3", points=7, title="Associate the role with signup-db for feature Lambda")
def association(ctx: Context) -> Iterator[Criterion]:
    role = get_role(ctx, ROLE, "Exercise 03.3 associates the role of 03.1: do 03.1 first.")
    db = ctx.db_instance(INSTANCE, hint="Run the setup cell at the top: it creates signup-db.")
    roles = db.get("AssociatedRoles") or []
    listed = ", ".join(f"{r['RoleArn']} ({r.get('FeatureName')}, {r.get('Status')})" for r in roles)
    mine = [r for r in roles if r["RoleArn"] == role["Arn"]]
    lambda_role = next((r for r in roles if r.get("FeatureName") == "Lambda"), None)
    ok = bool(mine) and mine[0].get("FeatureName") == "Lambda" and mine[0].get("Status") == "ACTIVE"
    if ok:
        wrong, hint = "", ""
    elif mine:
        wrong = f"the role is associated for feature {mine[0].get('FeatureName')!r}, not 'Lambda'"
        hint = (
            "The feature name tells RDS which integration uses the role. Remove it "
            f"(rds.remove_role_from_db_instance(DBInstanceIdentifier='{INSTANCE}', RoleArn=..., "
            f"FeatureName={mine[0].get('FeatureName')!r})) and add it again with FeatureName='Lambda'."
        )
    elif lambda_role is not None:
        wrong = f"another role is associated for feature Lambda: {lambda_role['RoleArn']}"
        hint = f"Remove that association and add `{ROLE}` (one role per feature per instance)."
    else:
        wrong = f"`{ROLE}` is not associated with {INSTANCE}"
        hint = (
            f"rds.add_role_to_db_instance(DBInstanceIdentifier='{INSTANCE}', "
            f"RoleArn='{role['Arn']}', FeatureName='Lambda')"
        )
    yield Criterion(
        2,
        f"describe_db_instances('{INSTANCE}') AssociatedRoles: {listed or 'none'}",
        ok,
        wrong,
        hint,
    )
    criterion, _ = path_criterion(ctx, 2, INSTANCE)
    yield criterion
    yield dry_run_criterion(ctx, 3, INSTANCE, PASSWORD)


# ---------------------------------------------------------------------------- 03.4
@exercise("03.4", points=7, title="Repair legacy-db's role, keeping least privilege")
def legacy(ctx: Context) -> Iterator[Criterion]:
    db = ctx.db_instance(
        LEGACY_INSTANCE, hint="Run the setup cell of exercise 03.4: it creates legacy-db."
    )
    assoc = next(
        (r for r in db.get("AssociatedRoles") or [] if r.get("FeatureName") == "Lambda"), None
    )
    if assoc is None:
        raise LearnerError(
            f"describe_db_instances('{LEGACY_INSTANCE}') AssociatedRoles",
            "no role is associated for feature Lambda any more",
            "Repair the role that was associated (legacy-db-lambda) rather than removing it, "
            "or associate a working role with FeatureName='Lambda'.",
        )
    name = assoc["RoleArn"].rsplit("/", 1)[-1]
    role = get_role(ctx, name, "The associated role no longer exists: associate an existing one.")
    trust = trust_decision(role, instance_arn(LEGACY_INSTANCE))
    yield Criterion(
        1,
        f"trust policy of `{name}` (associated for Lambda): may {SERVICE} assume it?",
        trust.allowed,
        f"no: it trusts {', '.join(trusted_principals(role)) or 'nobody'}",
        f"A role for RDS must trust the RDS service. {TRUST_HINT}",
    )
    docs = identity_documents(ctx, name)
    decision = invoke_decision(docs, role["Arn"])
    yield Criterion(
        1,
        f"explicit Deny of {ACTION} on {FUNCTION} in the policies of `{name}`",
        decision.effect != policy.DENY,
        f"{decision.by} denies it, and an explicit Deny beats every Allow",
        "The change freeze is over: delete that policy (iam.delete_role_policy).",
    )
    allows = invoke_decision([(label, _allow_only(doc)) for label, doc in docs], role["Arn"])
    yield Criterion(
        1,
        f"an Allow of {ACTION} on {FUNCTION_ARN} in the policies of `{name}`",
        allows.allowed,
        f"no statement allows it (policies: {_policy_names(docs)}); compare the Resource with "
        "the function's ARN character by character",
        "Correct the Resource of the existing Allow statement and put the policy back under the "
        f"same name: {_named_hint(name, docs)}",
    )
    wide = broad_problems(docs)
    yield practice(
        1,
        "least privilege: one action on one function ARN",
        allows.allowed and not wide,
        "; ".join(wide) if wide else "not checked: no statement allows the call yet",
        "Repair the existing statement instead of widening it: no '*' in Resource or Action, "
        "no AWSLambdaRole.",
    )
    criterion, _ = path_criterion(ctx, 1, LEGACY_INSTANCE)
    yield criterion
    yield dry_run_criterion(ctx, 2, LEGACY_INSTANCE, LEGACY_PASSWORD)


def _named_hint(role_name: str, docs: list[tuple[str, dict[str, Any]]]) -> str:
    """POLICY_HINT for ``role_name``, naming the inline policy that holds an Allow (if any)."""
    inline = [
        label.removeprefix("inline policy ")
        for label, doc in docs
        if label.startswith("inline policy ")
        and any(str(s.get("Effect", "")).lower() == "allow" for s in policy.statements(doc))
    ]
    hint = POLICY_HINT.replace("RoleName=...", f"RoleName={role_name!r}")
    return hint.replace("'invoke-welcome-email'", repr(inline[0])) if inline else hint


def _allow_only(doc: dict[str, Any]) -> dict[str, Any]:
    """The document without its Deny statements (to ask whether an Allow matches at all)."""
    kept = [s for s in policy.statements(doc) if str(s.get("Effect", "")).lower() == "allow"]
    return {**doc, "Statement": kept}
