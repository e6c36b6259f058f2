"""The child side of a warm execution environment: one process runs one function's handler.

Started by ``pool.Worker`` as ``python -B -P worker.py <request-fd> <response-fd>`` with the
function's environment (``_HANDLER``, ``LAMBDA_TASK_ROOT``, ``AWS_*``...). It imports nothing from
``rdslab`` so that the handler sees a clean interpreter, as in Lambda's Python runtime.

Protocol (binary pipes, one request at a time):

* child -> parent, once: ``{"t": "ready", "m"}`` or ``{"t": "init_error", "n": N, "m"}`` + N bytes
  of the error JSON (the child then exits, as a Lambda environment whose Init failed).
* parent -> child: a JSON header line ``{"id", "n", "deadline", "arn", "cc"}`` then ``n`` payload
  bytes; child -> parent: ``{"n", "e", "d", "m"}`` then ``n`` response bytes (``e`` is the
  errorType, or null on success; ``d`` the handler's duration in ms; ``m`` peak RSS in MB).

Everything the handler writes (print, logging, tracebacks, even child processes writing to
fd 1/2) goes straight to fd 1/2, a per-environment log file that the parent reads after each
invocation. Multi-line log records are written with ``\\r`` between their lines, as Lambda's
standard log sink does, so that one record stays one CloudWatch event.
"""

from __future__ import annotations

import decimal
import io
import json
import logging
import os
import sys
import threading
import time
import traceback
from typing import Any

_REQUEST_ID: str | None = None
_THIS_FILE = os.path.abspath(__file__)
_UNHANDLED_WARNING = (
    "LAMBDA_WARNING: Unhandled exception. The most likely cause is an issue in the function code. "
    "However, in rare cases, a Lambda runtime update can cause unexpected function behavior. "
    "For functions using managed runtimes, runtime updates can be triggered by a function change, "
    "or can be applied automatically. To determine if the runtime has been updated, check the "
    "runtime version in the INIT_START log entry. If this error correlates with a change in the "
    "runtime version, you may be able to mitigate this error by temporarily rolling back to the "
    "previous runtime version. For more information, see "
    "https://docs.aws.amazon.com/lambda/latest/dg/runtimes-update.html"
)


class _Stream(io.TextIOBase):
    """sys.stdout/sys.stderr: unbuffered writes to the environment's log file (fd 1)."""

    encoding = "utf-8"
    errors = "backslashreplace"

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        data = s.encode("utf-8", "backslashreplace")
        while data:
            written = os.write(1, data)
            data = data[written:]
        return len(s)

    def fileno(self) -> int:
        return 1

    def isatty(self) -> bool:
        return False

    def flush(self) -> None:
        return None


class _LambdaLogHandler(logging.Handler):
    """Lambda's root log handler: ``[LEVEL]\\t<utc ts>\\t<request id>\\t<message>``."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            record.aws_request_id = _REQUEST_ID or ""
            msg = self.format(record)
            sys.stdout.write(msg.replace("\n", "\r") + "\n")
        except Exception:  # noqa: BLE001 - logging must never break the handler
            self.handleError(record)


def _setup_logging() -> None:
    logging.Formatter.converter = time.gmtime
    handler = _LambdaLogHandler()
    handler.setFormatter(
        logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
            "%Y-%m-%dT%H:%M:%S",
        )
    )
    root = logging.getLogger()
    root.addHandler(handler)
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL", "").upper()
    if level in logging._nameToLevel:  # noqa: SLF001
        root.setLevel(level)


class _Fault(Exception):
    def __init__(self, error_type: str, msg: str, trace: list[str] | None = None) -> None:
        super().__init__(msg)
        self.error_type = error_type
        self.msg = msg
        self.trace = trace


def _make_error(msg: str, error_type: str, trace: list[str] | None, request_id: str | None) -> dict:
    return {
        "errorMessage": msg or "",
        "errorType": error_type or "",
        "requestId": request_id if request_id is not None else "",
        "stackTrace": trace or [],
    }


def _user_trace(tb: Any) -> list[str]:
    frames = traceback.extract_tb(tb)
    for i, frame in enumerate(frames):
        if os.path.abspath(frame.filename) != _THIS_FILE:
            frames = frames[i:]
            break
    else:
        frames = traceback.StackSummary.from_list([])
    return traceback.format_list(frames)


def _log_error(error: dict) -> None:
    description = "[ERROR]"
    if error.get("errorType"):
        description += " " + error["errorType"]
    if error.get("errorMessage"):
        if error.get("errorType"):
            description += ":"
        description += " " + error["errorMessage"]
    lines = [description]
    if error.get("stackTrace") is not None:
        lines.append("Traceback (most recent call last):")
        for element in error["stackTrace"]:
            lines.extend(element.splitlines() if element else [""])
    sys.stdout.write("\r".join(lines) + "\n")


def _get_handler(handler: str) -> Any:
    import importlib

    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as e:
        raise _Fault("Runtime.MalformedHandlerName", f"Bad handler '{handler}': {e}") from None
    try:
        if modname.split(".")[0] in sys.builtin_module_names:
            raise _Fault(
                "Runtime.BuiltInModuleConflict",
                f"Cannot use built-in module {modname} as a handler module",
            )
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        raise _Fault(
            "Runtime.ImportModuleError", f"Unable to import module '{modname}': {e}"
        ) from None
    except SyntaxError as e:
        trace = [f'  File "{e.filename}" Line {e.lineno}\n    {e.text}']
        raise _Fault(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module '{modname}': {e}", trace
        ) from None
    try:
        return getattr(module, fname)
    except AttributeError:
        raise _Fault(
            "Runtime.HandlerNotFound", f"Handler '{fname}' missing on module '{modname}'"
        ) from None


class _Obj:
    """A plain attribute holder (ClientContext, Client, CognitoIdentity)."""

    def __init__(self, fields: tuple[str, ...], values: dict[str, Any] | None) -> None:
        for name in fields:
            setattr(self, name, (values or {}).get(name))

    def __repr__(self) -> str:
        inner = ",".join(f"{k}={v}" for k, v in self.__dict__.items())
        return f"{type(self).__name__}([{inner}])"


class ClientContext(_Obj):
    pass


class Client(_Obj):
    pass


class CognitoIdentity(_Obj):
    pass


class LambdaContext:
    """The ``context`` argument, with the attributes of Lambda's Python runtime."""

    def __init__(self, request_id: str, deadline_ms: int, arn: str, cc: Any) -> None:
        env = os.environ
        self.aws_request_id = request_id
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME")
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = arn
        self.tenant_id = None
        self.client_context = None
        if isinstance(cc, dict):
            self.client_context = ClientContext(("custom", "env", "client"), cc)
            if self.client_context.client is not None:  # type: ignore[attr-defined]
                self.client_context.client = Client(  # type: ignore[attr-defined]
                    (
                        "installation_id",
                        "app_title",
                        "app_version_name",
                        "app_version_code",
                        "app_package_name",
                    ),
                    cc["client"],
                )
        self.identity = CognitoIdentity(("cognito_identity_id", "cognito_identity_pool_id"), None)
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        delta = self._deadline_ms - int(time.time() * 1000)
        return delta if delta > 0 else 0

    def log(self, msg: Any) -> None:
        sys.stdout.write(str(msg))

    def __repr__(self) -> str:
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},"
            f"log_group_name={self.log_group_name},log_stream_name={self.log_stream_name},"
            f"function_name={self.function_name},memory_limit_in_mb={self.memory_limit_in_mb},"
            f"function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn},"
            f"client_context={self.client_context},identity={self.identity}])"
        )


class _Encoder(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, decimal.Decimal):  # Lambda's marshaller writes Decimals as numbers
            return int(o) if o == o.to_integral_value() else float(o)
        return super().default(o)


_STATUS_FD: int | None = None


def _max_rss_mb() -> int:
    """Peak RSS (VmHWM; ru_maxrss would include the parent's peak, kept across exec)."""
    global _STATUS_FD
    try:
        if _STATUS_FD is None:
            _STATUS_FD = os.open("/proc/self/status", os.O_RDONLY)
        status = os.pread(_STATUS_FD, 4096, 0)
        start = status.index(b"VmHWM:") + 6
        return int(status[start : status.index(b"kB", start)]) // 1024
    except (OSError, ValueError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


def _send(out: int, header: dict, body: bytes = b"") -> None:
    data = json.dumps(header).encode() + b"\n" + body
    view = memoryview(data)
    while view:
        view = view[os.write(out, view) :]


def _trace_id() -> str:
    now = int(time.time())
    return (
        f"Root=1-{now:08x}-{os.urandom(12).hex()};Parent={os.urandom(8).hex()};Sampled=0;"
        "Lineage=1:0:0"
    )


def main() -> None:
    global _REQUEST_ID
    request_fd, response_fd = int(sys.argv[1]), int(sys.argv[2])
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    sys.stdout = sys.stderr = _Stream()
    task_root = os.environ.get("LAMBDA_TASK_ROOT", os.getcwd())
    sys.path.insert(0, task_root)
    _setup_logging()
    ascii_only = os.environ.get("AWS_EXECUTION_ENV") != "AWS_Lambda_python3.12"
    encoder = _Encoder(ensure_ascii=ascii_only)
    try:
        handler = _get_handler(os.environ["_HANDLER"])
    except _Fault as fault:
        error = _make_error(fault.msg, fault.error_type, fault.trace, None)
    except BaseException:  # noqa: BLE001 - any failure of the module's top level is an Init error
        etype, value, tb = sys.exc_info()
        error = _make_error(str(value), etype.__name__ if etype else "", _user_trace(tb), None)
    else:
        error = None
    if error is not None:
        logging.warning(_UNHANDLED_WARNING)
        _log_error(error)
        body = json.dumps(error).encode()
        _send(response_fd, {"t": "init_error", "n": len(body), "m": _max_rss_mb()}, body)
        os._exit(1)
    _send(response_fd, {"t": "ready", "m": _max_rss_mb()})

    requests = os.fdopen(request_fd, "rb", buffering=1 << 16)
    while True:
        line = requests.readline()
        if not line:
            os._exit(0)
        req = json.loads(line)
        raw = requests.read(req["n"]) if req["n"] else b""
        request_id = _REQUEST_ID = req["id"]
        os.environ["_X_AMZN_TRACE_ID"] = _trace_id()
        started = time.perf_counter()
        error_type = None
        try:
            context = LambdaContext(request_id, req["deadline"], req["arn"], req.get("cc"))
            try:
                event = json.loads(raw) if raw else {}
            except ValueError as e:
                raise _Fault("Runtime.UnmarshalError", f"Unable to unmarshal input: {e}") from None
            result = handler(event, context)
            if isinstance(result, bytes):
                body = result
            else:
                try:
                    body = encoder.encode(result).encode("utf-8")
                except Exception as e:  # noqa: BLE001
                    raise _Fault(
                        "Runtime.MarshalError", f"Unable to marshal response: {e}"
                    ) from None
        except _Fault as fault:
            error = _make_error(fault.msg, fault.error_type, fault.trace, request_id)
        except Exception:  # noqa: BLE001 - the handler's uncaught exception
            etype, value, tb = sys.exc_info()
            error = _make_error(
                str(value), etype.__name__ if etype else "", _user_trace(tb), request_id
            )
        else:
            error = None
        duration = (time.perf_counter() - started) * 1000
        if error is not None:
            _log_error(error)
            error_type = error["errorType"]
            body = encoder.encode(error).encode("utf-8")
        _REQUEST_ID = None
        _send(
            response_fd,
            {"n": len(body), "e": error_type, "d": duration, "m": _max_rss_mb()},
            body,
        )


if __name__ == "__main__":
    main()
