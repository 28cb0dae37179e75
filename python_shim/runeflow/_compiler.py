"""The worker's trusted compiler: source in, marshalled code objects out.

Runs in its own interpreter, booted like the zygote (PROTOCOL.md,
"Compiler"), and never runs workspace code: it only compiles it, so the
code objects the worker caches and sends to children cannot be poisoned by
a workflow. For each module it also lists the imports its bytecode makes,
which the worker uses to send a workflow's modules along with `run`.
"""

import dis
import marshal
import sys

from runeflow import _compile, _protocol

#: Most imports reported per module (the worker only prefetches with them).
MAX_IMPORTS = 1024


def main(control, boot):
    """Serves `compile` requests on the control socket until it closes."""
    _protocol.send(control, {"op": "ready", "pid": 0,
                             "python": "%d.%d.%d" % sys.version_info[:3]})
    while True:
        request = _protocol.recv(control)
        if request is None:
            return
        if request.get("op") != "compile" or not isinstance(request.get("items"), list):
            _protocol.send(control, {"op": "error", "message": "expected `compile`"})
            continue
        replies, blobs = [], []
        for item in request["items"]:
            reply, blob = _compile_one(item)
            replies.append(reply)
            blobs.append(blob)
        _protocol.send(control, {"op": "compiled", "items": replies})
        _protocol.send_raw(control, b"".join(blobs))


def _compile_one(item):
    """({size, imports} or {error}, marshalled bytes)."""
    try:
        source, filename = item["source"], item["filename"]
        code = _compile.compile_source(_compile.normalise_source(source), filename)
        blob = marshal.dumps(code)
        return {"size": len(blob), "imports": imports_of(code)}, blob
    except BaseException as exc:  # SyntaxError and friends: the child compiles and raises it
        return {"error": f"{type(exc).__name__}: {exc}"}, b""


def imports_of(code):
    """[[name, fromlist, level]] of every IMPORT_NAME in `code` and nested code.

    CPython compiles ``from ..a import b`` to ``LOAD_CONST 2``, ``LOAD_CONST
    ('b',)``, ``IMPORT_NAME a``: the two constants before the import.
    """
    found, stack, seen = [], [code], set()
    while stack and len(found) < MAX_IMPORTS:
        current = stack.pop()
        before = [None, None]  # the two instructions before the current one
        for instruction in dis.get_instructions(current):
            if instruction.opname == "IMPORT_NAME" and all(
                    i is not None and i.opname == "LOAD_CONST" for i in before):
                entry = _entry(instruction.argval, before[1].argval, before[0].argval)
                if entry is not None and entry not in seen:
                    seen.add(entry)
                    found.append([entry[0], list(entry[1]), entry[2]])
            before = [before[1], instruction]
        stack.extend(c for c in current.co_consts if hasattr(c, "co_code"))
    return found


def _entry(name, fromlist, level):
    if not isinstance(name, str) or not isinstance(level, int) or level < 0:
        return None
    names = tuple(n for n in (fromlist or ()) if isinstance(n, str))
    return name, names, level
