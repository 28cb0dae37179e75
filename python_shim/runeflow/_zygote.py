"""The warm interpreter: preload once, then fork one child per execution.

The zygote is single-threaded (PROTOCOL.md, "Control socket"). It forks
each child *ahead* of its `spawn`: that spare child does the set-up that
needs no execution, then reads the control socket itself. The first valid
`spawn` it reads makes it that execution's child: it answers `spawned`
with its own pid, tells the zygote (one byte on a private pipe) and runs.
The zygote then forks the next spare, while the execution runs.

So neither the fork nor the child's start-up is on the path of a `spawn`,
and the zygote, which shares its memory with every child, touches (and so
copies) very little of it per execution: no JSON, no reply, just the fork.
Exactly one process reads the control socket at any time: the current
spare, or the zygote itself when it could not fork one (it then answers
`spawn` with an error). A forked child never returns into the zygote's
loop: it leaves with os._exit.
"""

import _signal
import _socket
import ctypes
import gc
import importlib
import os
import resource
import select
import signal
import sys

from runeflow import _protocol

#: Shim modules every child uses; imported before gc.freeze() so forks share them.
_SHIM_MODULES = ("runeflow._protocol", "runeflow._hook", "runeflow._output",
                 "runeflow._runner", "runeflow._resources")

#: Young-object collections in a child: fewer, larger ones than the default
#: 700 (a short run then rarely collects at all). Cycles are still collected.
_CHILD_GC_THRESHOLD = 10_000

# prctl options (linux/prctl.h).
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36

#: Pid of the zygote (set in each spare): a child's parent must stay it.
_ZYGOTE_PID = None

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
    finally:
        _kill_running()


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
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, _signal.SIGKILL, 0, 0, 0)
    if os.getppid() != zygote:
        os._exit(1)  # the zygote died before prctl took effect


def _find_prctl():
    """libc's prctl as a ctypes function (None where there is none).

    Looked up once, in the zygote: ctypes.CDLL in each child would cost it
    ~60 page faults and ~0.2 ms of CPU time.
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE, harmless: binds the call's symbols here, once
    return prctl


_PRCTL = _find_prctl()


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
            status = _fork_spare(control)
        except OSError as exc:  # cannot fork now: answer the next request ourselves
            status = _refuse_one(control, f"fork failed: {exc}")
        if status == _EOF:
            return
        if status == _BROKEN:
            sys.exit(1)


def _fork_spare(control):
    """Forks a spare and waits until it stops serving; returns its status byte."""
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
        global _ZYGOTE_PID
        _ZYGOTE_PID = zygote
        os.close(read_end)
        _die_with_zygote(zygote)
        _spare(control, write_end)  # never returns
    os.close(write_end)
    watch = _pidfd(pid)
    try:
        status = os.read(read_end, 1)  # b"" if the spare died without a word
    finally:
        os.close(read_end)
    if status == _TAKEN and watch is not None:
        _forget_finished()
        _RUNNING[pid] = watch
    elif watch is not None:
        os.close(watch)
    return status


# -- the executions' process groups ------------------------------------------

#: {pid: pidfd} of the children that took an execution and may still run.
#: Each leads its own process group; when the worker is gone the zygote
#: kills those groups, so a workflow's own subprocesses do not outlive it
#: (the children themselves die with the zygote, see _die_with_zygote).
_RUNNING = {}


def _pidfd(pid):
    """A pidfd for `pid` (None where there is none): it tells whether that
    very process has exited, with no risk of meeting a reused pid."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _exited(pidfd):
    return bool(select.select([pidfd], [], [], 0)[0])


def _forget_finished():
    for pid, pidfd in list(_RUNNING.items()):
        if _exited(pidfd):
            os.close(pidfd)
            del _RUNNING[pid]


def _drop_zygote_pidfds():
    """In a spare: the zygote's pidfds are not the execution's to keep."""
    for pidfd in _RUNNING.values():
        os.close(pidfd)
    _RUNNING.clear()


def _kill_running():
    """SIGKILLs the process group of every execution still running."""
    for pid, pidfd in _RUNNING.items():
        if not _exited(pidfd):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
    _RUNNING.clear()


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
        request, fds = _protocol.recv_with_fds(control, maxfds=2)
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
    if request.get("op") != "spawn" or len(fds) not in (1, 2):
        return (f"expected `spawn` with one or two descriptors, got op={request.get('op')!r} "
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
        _drop_zygote_pidfds()
        gc.set_threshold(_CHILD_GC_THRESHOLD)
        gc.enable()
        # The C function: signal.signal's enum conversions cost ~20 page faults.
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
        _warm_import_machinery()
        while True:
            request, fds, status = _read_request(control)
            if request is None:
                break
            error = _spawn_error(request, fds)
            if error is None:
                status = _take(control, fds, request, status_fd)  # returns only on failure
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


def _warm_import_machinery():
    """Loads one empty module through the workspace loader, while idle.

    The first import in a forked child writes to many of the zygote's
    pages (importlib's functions, locks, sys.modules), and each write
    copies a page: done here, that cost is paid before an execution
    arrives instead of inside its first import.
    """
    from runeflow import _hook
    try:
        _hook.warm_up_loader()
    except Exception as exc:  # only an optimisation: never stop a spare
        print(f"runeflow spare: import warm-up failed: {exc!r}", file=sys.stderr)


def _take(control, fds, request, status_fd):
    """Turns the spare into the child of the execution on `fds[0]` (never
    returns, unless it cannot become that child: then the status to report,
    _EOF when the worker is gone, None after an `error` reply)."""
    fd, output = fds[0], (fds[1] if len(fds) > 1 else None)
    os.set_inheritable(fd, False)  # user subprocesses must not get the socket
    setup_error = None
    try:
        os.setpgid(0, 0)  # own process group, before the worker learns the pid
    except OSError as exc:  # reported on the execution's socket
        setup_error = exc
    try:
        _become_user(request.get("user"))
    except OSError as exc:  # a worker fault: no user code ran
        for owned in fds:
            os.close(owned)
        return _send(control, {"op": "error", "message": f"cannot switch to the child user: {exc}"})
    if _send(control, {"op": "spawned", "pid": os.getpid()}) is not None:
        for owned in fds:
            os.close(owned)
        return _EOF
    os.write(status_fd, _TAKEN)  # the zygote forks the next spare while we run
    os.close(status_fd)
    _child(control, fd, output, request, setup_error)


def _become_user(user):
    """Switches to the execution's own uid/gid (no supplementary groups).

    Each concurrency slot of a worker has its own uid, so an execution can
    signal or trace no other process: not the worker, not the zygote, not
    another execution. A credential change clears the parent-death signal
    and the dumpable flag: the first is set again; the second is set to 1
    (this process holds nothing secret, and its own /proc entries stay
    usable to it).
    """
    if not user:
        return
    uid, gid = int(user["uid"]), int(user["gid"])
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise PermissionError(f"still uid {os.getuid()}/{os.geteuid()}, not {uid}")
    if _PRCTL is not None:
        _PRCTL(_PR_SET_DUMPABLE, 1, 0, 0, 0)
    _die_with_zygote(_ZYGOTE_PID)
    try:
        os.chdir(os.environ.get("HOME") or "/")
    except OSError:
        os.chdir("/")


def _child(control, fd, output, request, setup_error):
    """Body of an execution's child: finish the set-up, run, os._exit."""
    status = 1
    channel = None
    try:
        # The C socket type, family and type given: no getsockname/getsockopt
        # calls, and none of socket.py's Python layer (~30 page faults).
        channel = _protocol.Channel(_socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd))
        if setup_error is not None:
            raise setup_error
        _prepare_child(control, output, request)
        from runeflow import _runner
        _runner.run(channel)
        status = 0
    except BaseException as exc:  # noqa: B036 - report anything, then leave
        _report(channel, exc)
    finally:
        _flush_std()
        _kill_descendants()
        os._exit(status)


def _prepare_child(control, output, request):
    """The rest of what PROTOCOL.md asks of a child before it talks to the worker."""
    control.close()
    devnull = os.open(os.devnull, os.O_RDONLY)  # may itself be fd 0 now
    if devnull != 0:
        os.dup2(devnull, 0)
        os.close(devnull)
    else:
        os.set_inheritable(0, True)  # stdin of the workflow's subprocesses
    if output is not None:
        # fds 1 and 2 of the child and its subprocesses: the execution's own
        # pipe, which the worker reads into this execution's log budget.
        os.dup2(output, 1)
        os.dup2(output, 2)
        if output not in (1, 2):
            os.close(output)
    if _PRCTL is not None:
        # Orphans of the workflow's subprocesses (a daemon that left its
        # session) come back to this process, which kills them at the end.
        _PRCTL(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    _apply_rlimits(request.get("rlimits") or {})


#: rlimits `spawn` may set, by their key in the request.
_RLIMITS = (("as_bytes", resource.RLIMIT_AS), ("cpu_seconds", resource.RLIMIT_CPU),
            ("processes", resource.RLIMIT_NPROC), ("open_files", resource.RLIMIT_NOFILE),
            ("file_size_bytes", resource.RLIMIT_FSIZE))


def _apply_rlimits(rlimits):
    for key, which in _RLIMITS:
        value = rlimits.get(key)
        if value is not None:
            resource.setrlimit(which, (int(value), int(value)))


def _kill_descendants():
    """SIGKILLs every process the execution started, also one that left its
    process group or session (as subreaper, this process is the parent of
    every orphan among them). Costs one waitpid when there are none."""
    for _ in range(20):
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # no child left at all
        except OSError:
            return
        if pid:
            continue  # reaped one; look again
        for victim in _descendants(os.getpid()):
            try:
                os.kill(victim, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.waitpid(-1, 0)  # the SIGKILLed ones exit at once
        except OSError:
            return


def _descendants(root):
    """Pids of every live descendant of `root` (a scan of /proc)."""
    parents = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rpartition(b")")[2].split()
        if len(fields) > 1:
            parents[int(entry)] = int(fields[1])
    found, frontier = [], {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier}
        found.extend(frontier)
    return found


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
