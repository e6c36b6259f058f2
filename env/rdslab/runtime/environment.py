"""What an execution environment is made of: the function's code (the uploaded zip, extracted
once per code digest into a cache directory), its environment variables (Lambda's reserved ones,
the function's own ``Environment``, and ``AWS_ENDPOINT_URL`` so that the handler's boto3 reaches
the lab) and credentials for its execution role (moto STS ``AssumeRole``, session = function
name, as Lambda does).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any

from .. import config
from .api import LambdaApiError
from .pool import WORKER_SCRIPT, Spec

log = logging.getLogger("rdslab.runtime")
_extract_lock = threading.Lock()


def code_root() -> Path:
    path = config.state_dir() / "lambda-code"
    path.mkdir(parents=True, exist_ok=True)
    return path


def code_digest(fn: Any) -> str:
    """A file-name-safe digest of the function's code (moto's CodeSha256 is base64)."""
    sha = getattr(fn, "code_sha_256", "") or ""
    return hashlib.sha256(sha.encode()).hexdigest()[:32] if sha else "empty"


def extract_code(fn: Any) -> str:
    """The directory holding the function's unpacked deployment package."""
    digest = code_digest(fn)
    target = code_root() / digest
    if (target / ".rdslab-complete").exists():
        return str(target)
    code = getattr(fn, "code_bytes", b"") or b""
    with _extract_lock:
        if (target / ".rdslab-complete").exists():
            return str(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{digest}-", dir=code_root()))
        try:
            if code:
                try:
                    with zipfile.ZipFile(io.BytesIO(code)) as zf:
                        zf.extractall(tmp)
                except zipfile.BadZipFile:
                    raise LambdaApiError(
                        502,
                        "InvalidZipFileException",
                        "Lambda was not able to unzip the file",
                    ) from None
            (tmp / ".rdslab-complete").write_text(getattr(fn, "code_sha_256", "") or "")
            try:
                os.replace(tmp, target)
            except OSError:  # another process extracted the same code first
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return str(target)


def check_runtime(fn: Any) -> None:
    """The lab runs Python handlers only (under the lab's own interpreter)."""
    runtime = getattr(fn, "run_time", None) or ""
    if getattr(fn, "package_type", "Zip") != "Zip" or not runtime.startswith("python3"):
        raise LambdaApiError(
            502,
            "InvalidRuntimeException",
            f"The runtime parameter of {runtime or fn.package_type} is not supported by the "
            "lab: only Python (python3.x) zip functions run here.",
        )


def role_credentials(account: str, region: str, role_arn: str, session: str) -> dict[str, str]:
    """Temporary credentials for the execution role, from moto's STS (test keys as fallback)."""
    try:
        from moto.sts.models import sts_backends
        from moto.utilities.utils import get_partition

        backend = sts_backends[account][get_partition(region)]
        role = backend.assume_role(
            region_name=region,
            role_session_name=session,
            role_arn=role_arn,
            policy="",
            duration=43200,
            external_id="",
        )
        return {
            "AWS_ACCESS_KEY_ID": role.access_key_id,
            "AWS_SECRET_ACCESS_KEY": role.secret_access_key,
            "AWS_SESSION_TOKEN": role.session_token,
        }
    except Exception:  # noqa: BLE001 - a fake role still gets working (test) credentials
        log.debug("AssumeRole for %s failed; using the lab's test credentials", role_arn)
        return {
            "AWS_ACCESS_KEY_ID": config.ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": config.SECRET_ACCESS_KEY,
            "AWS_SESSION_TOKEN": "rdslab-session-token",
        }


def config_digest(fn: Any) -> str:
    """Changes whenever a configuration change must start new execution environments."""
    data = [
        fn.handler,
        fn.run_time,
        fn.environment_vars,
        fn.memory_size,
        fn.timeout,
        fn.role,
        getattr(fn, "ephemeral_storage", None),
        getattr(fn, "layers", None),
    ]
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def build_environment(
    fn: Any, version: str, account: str, region: str, code_dir: str, endpoint: str
) -> dict[str, str]:
    """The process environment of the handler (aws-fidelity §5.3)."""
    name = fn.function_name
    ld_path = ":".join(
        p for p in (code_dir, f"{code_dir}/lib", os.environ.get("LD_LIBRARY_PATH", "")) if p
    )
    env: dict[str, str] = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "en_US.UTF-8",
        "LD_LIBRARY_PATH": ld_path,
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
        "AWS_ENDPOINT_URL": endpoint,
        # never let the handler's SDK read the learner's real AWS configuration
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    env.update({str(k): str(v) for k, v in (fn.environment_vars or {}).items()})
    env.update(
        {
            "_HANDLER": fn.handler or "",
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.run_time}",
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size),
            "AWS_LAMBDA_FUNCTION_VERSION": version,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "LAMBDA_TASK_ROOT": code_dir,
            "LAMBDA_RUNTIME_DIR": str(Path(WORKER_SCRIPT).parent),
            "TZ": ":UTC",
        }
    )
    env.update(role_credentials(account, region, fn.role, name))
    if sys.platform == "darwin":  # pragma: no cover - keep the interpreter's frameworks working
        env.pop("LD_LIBRARY_PATH", None)
    return env


class SpecCache:
    """Specs per (ARN, version, code, configuration): built once, then reused for each invoke."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._specs: dict[tuple[str, ...], Spec] = {}
        self._lock = threading.Lock()

    def get(self, fn: Any, base_arn: str, version: str, account: str, region: str) -> Spec:
        key = (base_arn, version, fn.code_sha_256 or "", config_digest(fn))
        spec = self._specs.get(key)
        if spec is not None:
            return spec
        check_runtime(fn)
        code_dir = extract_code(fn)
        env = build_environment(fn, version, account, region, code_dir, self.endpoint)
        spec = Spec(
            key=key,
            function_name=fn.function_name,
            version=version,
            code_dir=code_dir,
            env=env,
            memory_mb=int(fn.memory_size or 128),
            timeout=float(fn.timeout or 3),
            log_group=f"/aws/lambda/{fn.function_name}",
        )
        with self._lock:
            self._specs[key] = spec
        return spec

    def clear(self) -> None:
        with self._lock:
            self._specs.clear()
