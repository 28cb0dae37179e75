"""One execution, in the forked child (PROTOCOL.md, "Child socket").

Reads the `run` message, makes the workspace importable, captures output,
binds ``runeflow.context``, imports the workflow module, calls the function
and sends exactly one `result`. Every exception the workflow raises —
SystemExit and KeyboardInterrupt included — becomes a failed result.
"""

import errno
import importlib
import importlib.util
import inspect
import os
import sys
import threading
import traceback

import runeflow
from runeflow import _hook, _output, _protocol

#: Module name of a workflow file that cannot be imported by name.
BY_PATH_MODULE = "__runeflow_main__"

#: Frames of the shim and of importlib, hidden from reported tracebacks
#: (CPython hides its own importlib frames the same way on disk).
_MACHINERY = ("<runeflow-shim>/", "<frozen importlib._bootstrap")

#: Bounds on what one error report may carry.
_MAX_MESSAGE_CHARS = 64 * 1024
_MAX_TRACEBACK_CHARS = 1024 * 1024

_RUN_FIELDS = {
    "execution_id": str, "path": str, "function": str, "parameters": dict,
    "top_level": list, "root": str, "max_log_bytes": int,
}


def run(channel):
    """Serves one execution on `channel`; raises only for protocol faults."""
    message = _validate(channel.recv())
    prefetched = _prefetched(channel, message.get("prefetch"))
    workspace = _hook.install(channel, message["root"], message["top_level"], prefetched)
    logs = _output.install(channel, message["max_log_bytes"])
    _install_excepthooks()
    runeflow.context._bind(message["execution_id"], message["parameters"], channel)
    sys.argv = [workspace.abspath(message["path"])]
    if message.get("gate"):
        _await_go(channel)
    frame = _execute(workspace, message)
    logs.close()
    channel.send_frame(frame)


def _await_go(channel):
    """Waits for the worker's `go`: it sent `run` while still deciding
    whether the execution runs; nothing of the workflow runs before."""
    message = channel.recv()
    if message is None:
        raise _protocol.ProtocolError("the worker closed the socket before `go`")
    if message.get("op") != "go":
        raise _protocol.ProtocolError(f"expected `go`, got {message.get('op')!r}")


def _validate(message):
    if message is None:
        raise _protocol.ProtocolError("the worker closed the socket before `run`")
    if message.get("op") != "run":
        raise _protocol.ProtocolError(f"expected `run`, got {message.get('op')!r}")
    if message.get("parameters") is None:
        message["parameters"] = {}  # a workflow called with no parameters
    for field, kind in _RUN_FIELDS.items():
        if not isinstance(message.get(field), kind):
            raise _protocol.ProtocolError(f"`run` needs {field} ({kind.__name__})")
    if not isinstance(message.get("module"), (str, type(None))):
        raise _protocol.ProtocolError("`run` module must be a string or null")
    if not isinstance(message.get("gate", False), bool):
        raise _protocol.ProtocolError("`run` gate must be a boolean")
    return message


def _prefetched(channel, entries):
    """{dotted: find result} from the `prefetch` list of `run` and the blob
    frame that follows it (the concatenated code objects, in list order)."""
    if entries is None:
        return {}
    if not isinstance(entries, list):
        raise _protocol.ProtocolError("`run` prefetch must be a list")
    blob = memoryview(channel.recv_raw())
    found, offset = {}, 0
    for entry in entries:
        try:
            name, kind, path = entry["name"], entry["kind"], entry["path"]
            size, source = entry.get("code_len"), entry.get("source")
        except (TypeError, KeyError):
            raise _protocol.ProtocolError(f"bad prefetch entry {entry!r}") from None
        code = None
        if size is not None:
            code = bytes(blob[offset:offset + size])
            offset += size
        found[name] = (kind, path, source, code)
    if offset != len(blob):
        raise _protocol.ProtocolError("prefetch blob does not match its entries")
    return found


def _install_excepthooks():
    """Uncaught-error reports that show virtual source lines.

    CPython 3.11's built-in hooks print tracebacks in C, reading source
    lines from disk files; these use the traceback module, hence linecache,
    which the hook seeds with the workspace sources.
    """
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook
    sys.unraisablehook = _unraisablehook


def _excepthook(exc_type, exc_value, exc_traceback):
    if sys.stderr is not None:
        traceback.print_exception(exc_type, exc_value, exc_traceback, file=sys.stderr)


def _thread_excepthook(args):
    """threading's own pure-Python hook, minus the C traceback printer."""
    if args.exc_type is SystemExit or sys.stderr is None:
        return
    name = args.thread.name if args.thread is not None else threading.get_ident()
    print(f"Exception in thread {name}:", file=sys.stderr, flush=True)
    traceback.print_exception(args.exc_type, args.exc_value, args.exc_traceback, file=sys.stderr)
    sys.stderr.flush()


def _unraisablehook(unraisable):
    if sys.stderr is None:
        return
    label = unraisable.err_msg or "Exception ignored in"
    if unraisable.object is not None:
        try:
            label = f"{label}: {unraisable.object!r}"
        except Exception:
            label = f"{label}: <object repr() failed>"
    print(label, file=sys.stderr)
    if unraisable.exc_type is not None:
        traceback.print_exception(unraisable.exc_type, unraisable.exc_value,
                                  unraisable.exc_traceback, file=sys.stderr)


def _execute(workspace, message):
    """The encoded `result` frame for this execution."""
    try:
        function = _load_function(workspace, message)
        value = _call(function, message["parameters"])
    except BaseException as exc:  # noqa: B036 - SystemExit is a failure too
        return failure_frame(exc)
    return _success_frame(value)


def _load_function(workspace, message):
    module_name = message.get("module")
    if module_name and workspace.owns(module_name.partition(".")[0]):
        module = importlib.import_module(module_name)
    else:
        module = _load_by_path(workspace, message["path"])
    return getattr(module, message["function"])


def _load_by_path(workspace, path):
    """Runs a workflow file that has no importable name (e.g. a '-' in it)."""
    source = workspace.read(path)
    if source is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), workspace.abspath(path))
    spec = workspace.spec(BY_PATH_MODULE, ("module", path, source, None))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(spec.name, None)
        raise
    return module


#: Result types that are never awaitable: skips inspect.isawaitable, whose
#: collections.abc check is uncached in a fresh child.
_PLAIN_RESULTS = frozenset((type(None), bool, int, float, str, list, dict, tuple))


def _call(function, parameters):
    """Calls the workflow; an `async def` one runs in a fresh event loop."""
    result = function(**parameters)
    if type(result) not in _PLAIN_RESULTS and inspect.isawaitable(result):
        import asyncio
        result = asyncio.run(_awaited(result))
    return result


async def _awaited(awaitable):
    return await awaitable


def _success_frame(value):
    try:
        return _protocol.encode({"op": "result", "status": "success", "value": value})
    except (TypeError, ValueError, RecursionError) as exc:
        return _error_frame(
            "ResultNotSerializable",
            f"the workflow returned a value of type {type_name(type(value))} "
            f"that is not JSON-serialisable: {exc}")
    except _protocol.ProtocolError as exc:
        return _error_frame("ResultTooLarge", f"the workflow's result is too large to send: {exc}")


def failure_frame(exc):
    """The `result` frame reporting `exc` (type, message, traceback)."""
    return _error_frame(type_name(type(exc)), _message(exc), format_traceback(exc))


def _error_frame(kind, message, tb=None):
    error = {"type": _clean(kind, 1024), "message": _clean(message, _MAX_MESSAGE_CHARS),
             "traceback": None if tb is None else _clean(tb, _MAX_TRACEBACK_CHARS)}
    return _protocol.encode({"op": "result", "status": "failed", "error": error})


def type_name(cls):
    """`ValueError` for builtins, `mypkg.errors.MyError` otherwise."""
    module = getattr(cls, "__module__", None)
    qualname = getattr(cls, "__qualname__", None) or getattr(cls, "__name__", "?")
    return qualname if module in (None, "builtins") else f"{module}.{qualname}"


def _message(exc):
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not hide the failure
        return f"<unprintable {type(exc).__name__}>"


def _clean(text, limit):
    """Valid UTF-8 text (lone surrogates escaped), at most `limit` characters."""
    if len(text) > limit:
        text = text[:limit] + "\n[runeflow: truncated]"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def format_traceback(exc):
    """Like traceback.format_exc(), minus the shim's and importlib's frames.

    Machinery frames are dropped when user frames remain (or for import and
    syntax errors, whose location is in the message), so a user sees what a
    disk run would show; a fault inside the shim keeps its full traceback.
    """
    try:
        report = traceback.TracebackException.from_exception(exc)
        _hide_machinery(report, set())
        return "".join(report.format())
    except Exception:
        return "".join(traceback.format_exception(exc))


def _hide_machinery(report, seen):
    if report is None or id(report) in seen:
        return
    seen.add(id(report))
    frames = [f for f in report.stack if not f.filename.startswith(_MACHINERY)]
    if frames or issubclass(report.exc_type, (ImportError, SyntaxError)):
        report.stack = traceback.StackSummary.from_list(frames)
    _hide_machinery(report.__cause__, seen)
    _hide_machinery(report.__context__, seen)
    for nested in report.exceptions or ():
        _hide_machinery(nested, seen)
