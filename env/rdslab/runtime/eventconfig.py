"""Function event invoke configs (Put/Update/Get/List/DeleteFunctionEventInvokeConfig) stored
per function and qualifier, as Lambda does. moto 5.2.5 keeps a list in which a second Put is
ignored by Get, Update does not merge, and the Qualifier is dropped; the lab keeps its own table
on moto's function record (so it goes away with the function and with a moto reset).
"""

from __future__ import annotations

import copy
from typing import Any

from moto.core.utils import iso_8601_datetime_with_nanoseconds

_KEY = "rdslab_event_invoke_config"


def _group(storage: Any, name: str) -> dict[str, Any]:
    from moto.awslambda.exceptions import UnknownFunctionException

    group = storage._functions.get(name)  # noqa: SLF001
    if not group:
        raise UnknownFunctionException(
            f"arn:aws:lambda:{storage.region_name}:{storage.account_id}:function:{name}"
        )
    return group


def _split(storage: Any, name_or_arn: str, qualifier: str | None) -> tuple[str, str | None]:
    _, name, derived = storage.split_function_arn(name_or_arn)
    return name, (derived or qualifier or None)


def _validate_target(storage: Any, name: str, qualifier: str | None) -> Any:
    from moto.awslambda.exceptions import UnknownFunctionException

    group = _group(storage, name)
    if qualifier in (None, "$LATEST"):
        return group
    try:
        storage.get_function_by_name_with_qualifier(name, qualifier)
    except UnknownFunctionException:
        raise UnknownFunctionException(
            f"arn:aws:lambda:{storage.region_name}:{storage.account_id}:function:{name}:{qualifier}"
        ) from None
    return group


def _response(storage: Any, name: str, qualifier: str | None, cfg: dict[str, Any]) -> dict:
    arn = f"arn:aws:lambda:{storage.region_name}:{storage.account_id}:function:{name}"
    if qualifier:
        arn += f":{qualifier}"
    out = {"LastModified": cfg["_modified"], "FunctionArn": arn}
    out.update({k: v for k, v in cfg.items() if not k.startswith("_")})
    out.setdefault("DestinationConfig", {"OnSuccess": {}, "OnFailure": {}})
    return out


def _store(storage: Any, name: str, qualifier: str | None) -> dict[str | None, dict]:
    group = _validate_target(storage, name, qualifier)
    return group.setdefault(_KEY, {})


def _norm(qualifier: str | None) -> str | None:
    return None if qualifier in (None, "", "$LATEST") else qualifier


def put(storage: Any, name_or_arn: str, qualifier: str | None, body: dict[str, Any]) -> dict:
    from moto.awslambda.models import EventInvokeConfig

    name, qualifier = _split(storage, name_or_arn, qualifier)
    table = _store(storage, name, qualifier)
    config = {k: v for k, v in body.items() if k in _FIELDS}
    EventInvokeConfig("", "", config)  # moto's validation (limits, destination ARNs)
    config["_modified"] = iso_8601_datetime_with_nanoseconds()
    table[_norm(qualifier)] = config
    return _response(storage, name, qualifier, config)


def update(storage: Any, name_or_arn: str, qualifier: str | None, body: dict[str, Any]) -> dict:
    from moto.awslambda.models import EventInvokeConfig

    name, qualifier = _split(storage, name_or_arn, qualifier)
    table = _store(storage, name, qualifier)
    config = copy.deepcopy(table.get(_norm(qualifier), {}))
    for key in _FIELDS:
        if key not in body:
            continue
        if key == "DestinationConfig":
            merged = dict(config.get(key) or {})
            merged.update(body[key] or {})
            config[key] = merged
        else:
            config[key] = body[key]
    EventInvokeConfig("", "", {k: v for k, v in config.items() if not k.startswith("_")})
    config["_modified"] = iso_8601_datetime_with_nanoseconds()
    table[_norm(qualifier)] = config
    return _response(storage, name, qualifier, config)


def get(storage: Any, name_or_arn: str, qualifier: str | None) -> dict:
    from moto.awslambda.exceptions import UnknownEventConfig

    name, qualifier = _split(storage, name_or_arn, qualifier)
    config = _store(storage, name, qualifier).get(_norm(qualifier))
    if config is None:
        arn = f"arn:aws:lambda:{storage.region_name}:{storage.account_id}:function:{name}"
        raise UnknownEventConfig(arn + (f":{qualifier}" if qualifier else ""))
    return _response(storage, name, qualifier, config)


def delete(storage: Any, name_or_arn: str, qualifier: str | None) -> None:
    get(storage, name_or_arn, qualifier)  # 404 when there is none
    name, qualifier = _split(storage, name_or_arn, qualifier)
    _store(storage, name, qualifier).pop(_norm(qualifier), None)


def list_all(storage: Any, name_or_arn: str) -> dict:
    name, _ = _split(storage, name_or_arn, None)
    table = _group(storage, name).get(_KEY, {})
    return {
        "FunctionEventInvokeConfigs": [
            _response(storage, name, q, cfg)
            for q, cfg in sorted(table.items(), key=lambda i: i[0] or "")
        ]
    }


def lookup(storage: Any, name: str, qualifier: str | None) -> dict[str, Any]:
    """The config that applies to an invocation of ``name`` with ``qualifier`` ({} if none)."""
    group = storage._functions.get(name) or {}  # noqa: SLF001
    config = (group.get(_KEY) or {}).get(_norm(qualifier))
    return {k: v for k, v in (config or {}).items() if not k.startswith("_")}


_FIELDS = ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig")
