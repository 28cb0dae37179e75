"""The warm interpreter: preload once, then fork one child per execution.

The zygote is single-threaded (PROTOCOL.md, "Control socket"). It forks
each child *ahead* of its `spawn`: that spare child does the set-up that
needs no execution, then reads the control socket itself. The first valid
`spawn` it reads makes it that execution's child: it answers `spawned`
with its own pid, tells the zygote (one byte on a private pipe) and runs.
The zygote then forks the next spare, while the execution runs.

So a `spawn` costs neither a fork nor any work in the zygote, and the
zygote, which shares its memory with every child, touches (and so copies)
very little of it per execution. Exactly one process reads the control
socket at any time: the current spare, or the zygote itself when it could
not fork one (it then answers `spawn` with an error). A forked child never
returns into the zygote's loop: it leaves with os._exit.
"""

import _signal
import ctypes
import gc
import importlib
import linecache
import os
import resource
import select
import signal
import socket
import sys

from runeflow import _protocol

#: Shim modules every child uses; imported before gc.freeze() so forks share them.
_SHIM_MODULES = ("runeflow._protocol", "runeflow._hook", "runeflow._output",
                 "runeflow._runner", "runeflow._resources")

#: CPUs this process may run on (see _machine_idle).
_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

#: Longest wait, in seconds, before the next spare is forked while an
#: execution runs (see _let_it_run).
_LET_IT_RUN = 0.05

#: Young-object collections in a child: fewer, larger ones than the default
#: 700 (a short run then rarely collects at all). Cycles are still collected.
_CHILD_GC_THRESHOLD = 10_000

# What a spare tells the zygote when it stops reading the control socket.
_TAKEN = b"T"   # it answered a `spawn` and runs that execution: fork the next spare
_EOF = b"E"     # the control socket closed (or the worker is gone): exit 0
_BROKEN = b"X"  # the stream is out of step (already answered with `error`): exit 1
# No byte at all: the spare died while idle (killed); the zygote forks another.


def main(control, boot):
    """Entry point called by the bootstrap with the control socket and `boot`.

    The gc recipe is the one the gc module documents for fork servers:
    disabled while preloading (no freed holes in shared pages), frozen
    before forking, enabled again in each child, whose collections then
    never touch (and so never copy) the preloaded objects.
    """
    # Only the control socket (fd 0) and stdout/stderr are ours: close what
    # the worker inherited from its own parent, so no execution gets it.
    os.closerange(3, _max_fd())
    gc.disable()
    _preload(list(_SHIM_MODULES) + list(boot.get("preload") or ()))
    _prepare_children(boot)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    gc.freeze()
    _protocol.send(control, {"op": "ready", "pid": os.getpid(),
                             "python": "%d.%d.%d" % sys.version_info[:3]})
    try:
        _serve(control)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole terminal group
        sys.exit(130)


def _max_fd():
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (OSError, ValueError):
        return 65536


def _die_with_zygote(zygote):
    """SIGKILL this process when the zygote exits (Linux), however it exits.

    The zygote exits when its worker is gone (EOF on the control socket, or
    killed with the worker's process group); an execution must not go on
    running user code then, in parallel with its re-run elsewhere.
    """
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != zygote:
        os._exit(1)  # the zygote died before prctl took effect


def _preload(names):
    for name in names:
        try:
            importlib.import_module(name)
        except BaseException as exc:  # one bad preload must not stop the worker
            print(f"runeflow zygote: cannot preload {name!r}: {exc!r}", file=sys.stderr)


def _prepare_children(boot):
    """Set-up every child would otherwise repeat, done once before forking.

    Objects built here are shared copy-on-write by all children; building
    them in each child would cost its CPU time and page faults every time.
    """
    from runeflow import _hook, _output
    _output.prepare()
    if isinstance(boot.get("root"), str):
        _hook.prepare(boot["root"])


# -- the zygote ------------------------------------------------------------

def _serve(control):
    """Keeps a spare on the control socket until the socket closes."""
    while True:
        try:
            status, pid = _fork_spare(control)
        except OSError as exc:  # cannot fork now: answer the next request ourselves
            status, pid = _refuse_one(control, f"fork failed: {exc}"), None
        if status == _EOF:
            return
        if status == _BROKEN:
            sys.exit(1)
        if status == _TAKEN:
            _let_it_run(control, pid)


def _fork_spare(control):
    """Forks a spare and waits until it stops serving: (status byte, pid)."""
    read_end, write_end = os.pipe()
    zygote = os.getpid()
    _flush_std()  # or the child would repeat whatever the zygote buffered
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        raise
    if pid == 0:
        os.close(read_end)
        _die_with_zygote(zygote)
        _spare(control, write_end)  # never returns
    os.close(write_end)
    try:
        return os.read(read_end, 1), pid  # b"" if the spare died without a word
    finally:
        os.close(read_end)


def _let_it_run(control, pid):
    """Waits before forking the next spare, so the two do not share the CPU.

    Forking and setting up a spare costs a few milliseconds of CPU time;
    spent while a short execution runs, it slows that execution down. So
    the zygote waits until the child `pid` exits, a request is waiting (the
    spare is needed now) or _LET_IT_RUN seconds have passed (a long run).
    """
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd support, or the child is gone
        return
    try:
        select.select([pidfd, control], [], [], _LET_IT_RUN)
    finally:
        os.close(pidfd)


def _refuse_one(control, why):
    """Answers one control request with an error (no spare); its status."""
    request, fds, status = _read_request(control)
    if request is None:
        return status
    for fd in fds:
        os.close(fd)
    return _send(control, {"op": "error", "message": _spawn_error(request, fds) or why})


# -- control requests (read by a spare, or by the zygote without one) -------

def _read_request(control):
    """(request, fds, status): request None with the status to report."""
    try:
        request, fds = _protocol.recv_with_fds(control, maxfds=1)
    except _protocol.ProtocolError as exc:
        # The stream may be out of step: say why, then let the worker replace us.
        _send(control, {"op": "error", "message": f"control protocol: {exc}"})
        return None, [], _BROKEN
    except OSError:
        return None, [], _EOF  # the worker is gone
    if request is None:
        return None, [], _EOF  # EOF: the worker stopped us or died
    return request, fds, None


def _spawn_error(request, fds):
    """Why `request` is not a valid `spawn`, or None."""
    if request.get("op") != "spawn" or len(fds) != 1:
        return (f"expected `spawn` with one descriptor, got op={request.get('op')!r} "
                f"with {len(fds)}")
    return None


def _send(control, message):
    """Sends a control reply; _EOF when the worker is gone, else None."""
    try:
        _protocol.send(control, message)
        return None
    except OSError:
        return _EOF


# -- the spare, then the execution's child ----------------------------------

def _spare(control, status_fd):
    """Body of a spare: serve the control socket until a `spawn` takes it."""
    status = _BROKEN  # an unexpected fault here may leave the stream out of step
    try:
        # Execution-independent set-up, done while idle.
        gc.set_threshold(_CHILD_GC_THRESHOLD)
        gc.enable()
        # The C function: signal.signal's enum conversions cost ~20 page faults.
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
        if not _request_waiting(control) and _machine_idle():
            try:
                _warm_up(control)  # idle time: pay the first-touch costs now
            except Exception:  # only an optimisation: never fail the spare for it
                pass
        while True:
            request, fds, status = _read_request(control)
            if request is None:
                break
            error = _spawn_error(request, fds)
            if error is None:
                status = _take(control, fds[0], request, status_fd)  # returns only on failure
                break
            for fd in fds:
                os.close(fd)
            status = _send(control, {"op": "error", "message": error})
            if status is not None:
                break
    except KeyboardInterrupt:
        status = b""  # Ctrl-C: the zygote got it too and decides
    finally:
        try:
            os.write(status_fd, status or b"")
        finally:
            os._exit(0)


#: Top-level name of the dummy package a spare imports to warm up. It is
#: served by a dummy channel and forgotten again before any execution, so
#: a workspace folder of that name is not affected.
_WARM_UP_NAME = "__runeflow_warm_up__"


def _warm_up(control):
    """Runs, on dummy data, the code a `spawn` and a `run` start with.

    The first run of any code in a forked process copies the memory pages
    it writes to (reference counts, caches, allocator pools: ~3 us a page).
    An idle spare pays those copies here, so its execution does not: this
    halves the page faults between `spawn` and `result`, at the price of a
    little CPU time that nobody is waiting for. It stops as soon as a
    request is waiting, and it leaves no trace: every process-wide change
    (import machinery, sys.modules, linecache) is undone.
    """
    from runeflow import _hook, _runner
    ours, theirs = socket.socketpair()
    try:
        # A `spawn` with a descriptor, read as _read_request reads it; the reply.
        frame = _protocol.encode({"op": "spawn", "execution_id": "", "rlimits": {}})
        socket.send_fds(theirs, [frame[:1]], [theirs.fileno()])
        theirs.sendall(frame[1:])
        _request, fds = _protocol.recv_with_fds(ours, maxfds=1)
        for fd in fds:
            os.close(fd)
        _protocol.send(ours, {"op": "spawned", "pid": 0})
        if _request_waiting(control):
            return
        # A `run`, then the import of a namespace package and a module through
        # the hook, served over a Channel as the child's are.
        name, root = _WARM_UP_NAME, "/" + _WARM_UP_NAME
        for message in (
                {"op": "run", "execution_id": "", "path": "m.py", "module": None,
                 "function": "f", "parameters": {}, "top_level": [name], "root": root,
                 "max_log_bytes": 0},
                {"found": True, "kind": "namespace", "path": name},
                {"found": True, "kind": "module", "path": name + "/m.py", "source": "X = 1\n"}):
            theirs.sendall(_protocol.encode(message))
        channel = _protocol.Channel(socket.socket(
            socket.AF_UNIX, socket.SOCK_STREAM, 0, os.dup(ours.fileno())))
        try:
            message = _runner._validate(channel.recv())
            workspace = _hook.Workspace(channel, message["root"], message["top_level"])
            _warm_up_import(_hook, workspace, name)
            _runner._success_frame(1)
        finally:
            channel.sock.close()
    finally:
        ours.close()
        theirs.close()


def _warm_up_import(_hook, workspace, name):
    """Imports `name`.m through the workspace hook, then forgets it."""
    meta_path, path_hooks = sys.meta_path[:], sys.path_hooks[:]
    try:
        sys.meta_path.insert(0, _hook.WorkspaceFinder(workspace))
        sys.path_hooks.insert(0, workspace.path_hook)
        importlib.import_module(name + ".m")
    finally:
        sys.meta_path[:] = meta_path
        sys.path_hooks[:] = path_hooks
        sys.modules.pop(name + ".m", None)
        sys.modules.pop(name, None)
        sys.path_importer_cache.pop(workspace.abspath(name), None)
        linecache.cache.pop(workspace.abspath(name + "/m.py"), None)


def _request_waiting(control):
    return bool(select.select([control], [], [], 0)[0])


def _machine_idle():
    """True when a CPU is free now and was, on average, over the last minute.

    The warm-up only moves work off an execution's path; on a saturated
    machine it would just be extra work. /proc/loadavg gives both the load
    average and the tasks runnable right now (this one included).
    """
    try:
        fd = os.open("/proc/loadavg", os.O_RDONLY)
        try:
            fields = os.read(fd, 256).split()
        finally:
            os.close(fd)
        return float(fields[0]) < _CPUS and int(fields[3].split(b"/")[0]) <= _CPUS
    except (OSError, ValueError, IndexError):
        return True  # not Linux: no way to tell, assume it is


def _take(control, fd, request, status_fd):
    """Turns the spare into the child of the execution on `fd` (never
    returns, unless the worker is gone before the reply: then _EOF)."""
    os.set_inheritable(fd, False)  # user subprocesses must not get the socket
    setup_error = None
    try:
        os.setpgid(0, 0)  # own process group, before the worker learns the pid
    except OSError as exc:  # reported on the execution's socket
        setup_error = exc
    if _send(control, {"op": "spawned", "pid": os.getpid()}) is not None:
        os.close(fd)
        return _EOF
    os.write(status_fd, _TAKEN)  # the zygote forks the next spare now
    os.close(status_fd)
    _child(control, fd, request, setup_error)


def _child(control, fd, request, setup_error):
    """Body of an execution's child: finish the set-up, run, os._exit."""
    status = 1
    channel = None
    try:
        # Family and type given: no getsockname/getsockopt calls.
        channel = _protocol.Channel(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fd))
        if setup_error is not None:
            raise setup_error
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
    """The rest of what PROTOCOL.md asks of a child before it talks to the worker."""
    control.close()
    devnull = os.open(os.devnull, os.O_RDONLY)  # may itself be fd 0 now
    if devnull != 0:
        os.dup2(devnull, 0)
        os.close(devnull)
    else:
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
