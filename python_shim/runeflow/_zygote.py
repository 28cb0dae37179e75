"""The warm interpreter: preload once, then fork one child per execution.

The zygote is single-threaded and serves its control socket (fd 0) one
`spawn` at a time (PROTOCOL.md, "Control socket"). A forked child never
returns into this loop: it runs the execution and leaves with os._exit.
"""

import gc
import importlib
import os
import resource
import signal
import socket
import sys

from runeflow import _protocol

#: Shim modules every child uses; imported before gc.freeze() so forks share them.
_SHIM_MODULES = ("runeflow._protocol", "runeflow._hook", "runeflow._output",
                 "runeflow._runner", "runeflow._resources")


def main(control, boot):
    """Entry point called by the bootstrap with the control socket and `boot`.

    The gc recipe is the one the gc module documents for fork servers:
    disabled while preloading (no freed holes in shared pages), frozen
    before forking, enabled again in each child, whose collections then
    never touch (and so never copy) the preloaded objects.
    """
    gc.disable()
    _preload(list(_SHIM_MODULES) + list(boot.get("preload") or ()))
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    gc.freeze()
    _protocol.send(control, {"op": "ready", "pid": os.getpid(),
                             "python": "%d.%d.%d" % sys.version_info[:3]})
    try:
        _serve(control)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole terminal group
        sys.exit(130)


def _preload(names):
    for name in names:
        try:
            importlib.import_module(name)
        except BaseException as exc:  # one bad preload must not stop the worker
            print(f"runeflow zygote: cannot preload {name!r}: {exc!r}", file=sys.stderr)


def _serve(control):
    """Answers `spawn` requests until the control socket closes."""
    while True:
        try:
            request, fds = _protocol.recv_with_fds(control, maxfds=1)
        except _protocol.ProtocolError as exc:
            # The stream may be out of step: say why, then let the worker replace us.
            _reply(control, {"op": "error", "message": f"control protocol: {exc}"})
            sys.exit(1)
        if request is None:
            return  # EOF: the worker stopped us or died
        _reply(control, _handle(control, request, fds))


def _handle(control, request, fds):
    """The reply to one control request; forks for a valid `spawn`."""
    if request.get("op") != "spawn" or len(fds) != 1:
        for fd in fds:
            os.close(fd)
        return {"op": "error", "message":
                f"expected `spawn` with one descriptor, got op={request.get('op')!r} "
                f"with {len(fds)}"}
    fd = fds[0]
    _flush_std()  # or the child would repeat whatever the zygote buffered
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(fd)
        return {"op": "error", "message": f"fork failed: {exc}"}
    if pid == 0:
        _child(control, fd, request)  # never returns
    os.close(fd)
    return {"op": "spawned", "pid": pid}


def _reply(control, message):
    try:
        _protocol.send(control, message)
    except OSError:
        sys.exit(0)  # the worker is gone


def _child(control, fd, request):
    """Body of a forked child: set up the process, run, os._exit."""
    status = 1
    channel = None
    try:
        gc.enable()
        os.set_inheritable(fd, False)  # user subprocesses must not get the socket
        channel = _protocol.Channel(socket.socket(fileno=fd))
        _prepare_child(control, request)
        from runeflow import _runner
        _runner.run(channel)
        status = 0
    except BaseException as exc:  # noqa: B036 - report anything, then leave
        _report(channel, exc)
    finally:
        _flush_std()
        os._exit(status)


def _prepare_child(control, request):
    """What PROTOCOL.md asks of a child before it talks to the worker."""
    control.close()
    os.setpgid(0, 0)  # own process group: the worker kills the whole group
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDONLY)  # may itself be fd 0 now
    if devnull != 0:
        os.dup2(devnull, 0)
        os.close(devnull)
    os.set_inheritable(0, True)  # stdin of the workflow's subprocesses
    _apply_rlimits(request.get("rlimits") or {})


def _apply_rlimits(rlimits):
    limits = ((resource.RLIMIT_AS, rlimits.get("as_bytes")),
              (resource.RLIMIT_CPU, rlimits.get("cpu_seconds")))
    for which, value in limits:
        if value is not None:
            resource.setrlimit(which, (int(value), int(value)))


def _report(channel, exc):
    """Best effort: tell the worker why the child is failing."""
    if channel is None:
        return
    try:
        from runeflow import _runner
        channel.send_frame(_runner.failure_frame(exc))
    except BaseException:
        pass


def _flush_std():
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except BaseException:
            pass
