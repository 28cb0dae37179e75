"""A Python stand-in for the Rust worker's side of PROTOCOL.md.

It starts the zygote exactly as the worker does (``python3 -I -B -c
<bootstrap.py>``, fd 0 = one end of a socketpair, scrubbed environment,
``boot`` with the shim sources), spawns children with SCM_RIGHTS, and serves
their ``find``/``read``/``list`` requests from a dict ``{path: source}``.

A file's value may be a list of versions: the n-th time the file's source is
served it gives version n (the last one repeats); a version None means the
file is deleted from then on. That is how the tests edit a module between
an import and its ``importlib.reload``. Every request is recorded, so tests
can count round trips.
"""

import json
import marshal
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
SHIM_DIR = os.path.dirname(HERE)
DEFAULT_ROOT = "/runeflow/workspace"
DEFAULT_PRELOAD = ["json", "asyncio", "logging", "inspect", "traceback"]


def shim_sources():
    """{'runeflow/__init__.py': source, ...} as build.rs embeds them."""
    package = os.path.join(SHIM_DIR, "runeflow")
    files = {}
    for name in sorted(os.listdir(package)):
        if name.endswith(".py"):
            with open(os.path.join(package, name), encoding="utf-8") as f:
                files[f"runeflow/{name}"] = f.read()
    return files


def bootstrap_source():
    with open(os.path.join(SHIM_DIR, "bootstrap.py"), encoding="utf-8") as f:
        return f.read()


def load_tree(folder):
    """{relative path: text} of every UTF-8 file under `folder` (no caches)."""
    files = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, folder).replace(os.sep, "/")
            with open(full, encoding="utf-8", newline="") as f:
                files[rel] = f.read()
    return files


def module_name(path):
    """Dotted name of a workspace .py path, or None when not importable."""
    if not path.endswith(".py"):
        return None
    parts = path[:-3].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) if parts and all(p.isidentifier() for p in parts) else None


# -- framing (independent of the shim's own helpers) -----------------------

def send_frame(sock, message, fds=()):
    body = json.dumps(message).encode("utf-8")
    frame = len(body).to_bytes(4, "big") + body
    if fds:
        sent = socket.send_fds(sock, [frame[:1]], list(fds))
        sock.sendall(frame[sent:])
    else:
        sock.sendall(frame)


def recv_exact(sock, size):
    buf = b""
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            if buf:
                raise EOFError("connection closed in the middle of a frame")
            return None
        buf += chunk
    return buf


def recv_frame(sock, limit=16 * 1024 * 1024):
    header = recv_exact(sock, 4)
    if header is None:
        return None
    length = int.from_bytes(header, "big")
    if length > limit:
        raise ValueError(f"frame of {length} bytes over the limit")
    body = recv_exact(sock, length) if length else b""
    if body is None:
        raise EOFError("connection closed in the middle of a frame")
    return json.loads(body)


# -- results ---------------------------------------------------------------

@dataclass
class Execution:
    """What the worker would record about one execution."""

    status: str  # success | failed | died | timeout
    value: object = None
    error: dict = None
    log_frames: list = field(default_factory=list)
    requests: list = field(default_factory=list)
    pid: int = None

    @property
    def logs(self):
        return "".join(self.log_frames)

    def finds(self):
        return [r["name"] for r in self.requests if r.get("op") == "find"]


class Workspace:
    """The worker's per-execution view of the files (with versions)."""

    def __init__(self, files):
        self.files = dict(files)
        self.served = {}

    def current(self, path):
        value = self.files.get(path)
        if isinstance(value, list):
            return value[min(self.served.get(path, 0), len(value) - 1)]
        return value

    def serve(self, path):
        text = self.current(path)
        self.served[path] = self.served.get(path, 0) + 1
        return text

    def live(self):
        return [p for p in self.files if self.current(p) is not None]

    def top_level(self):
        names = set()
        for path in self.live():
            head, sep, _ = path.partition("/")
            if sep:
                names.add(head)
            elif head.endswith(".py"):
                names.add(head[:-3])
        return sorted(n for n in names if n.isidentifier())

    def find(self, name):
        if not name or not all(p.isidentifier() for p in name.split(".")):
            return {"found": False}
        rel = name.replace(".", "/")
        for path, kind in ((rel + "/__init__.py", "package"), (rel + ".py", "module")):
            if self.current(path) is not None:
                return {"found": True, "kind": kind, "path": path, "source": self.serve(path)}
        if any(p.startswith(rel + "/") for p in self.live()):
            return {"found": True, "kind": "namespace", "path": rel}
        return {"found": False}

    def read(self, path):
        if self.current(path) is None:
            return {"found": False}
        return {"found": True, "content": self.serve(path)}

    def prefetch(self, names, root):
        """(entries, blob) of `run`'s `prefetch`, compiled as the worker's
        compiler does (source instead when it does not compile)."""
        sys.path.insert(0, SHIM_DIR)
        try:
            from runeflow import _compile
        finally:
            sys.path.remove(SHIM_DIR)
        entries, blobs = [], []
        for name in names:
            found = self.find(name)
            if not found["found"]:
                continue
            entry = {"name": name, "kind": found["kind"], "path": found["path"]}
            path = found["path"]
            if found["kind"] != "namespace":  # served: a reload gets the next version
                try:
                    code = marshal.dumps(_compile.compile_source(
                        _compile.normalise_source(found["source"]), f"{root}/{path}"))
                    entry["code_len"] = len(code)
                    blobs.append(code)
                except SyntaxError:
                    entry["source"] = found["source"]
            entries.append(entry)
        return entries, b"".join(blobs)

    def list(self, folder):
        prefix = folder.rstrip("/") + "/" if folder else ""
        entries = set()
        for path in self.live():
            if path.startswith(prefix):
                head, sep, _ = path[len(prefix):].partition("/")
                entries.add((head, bool(sep)))
        return {"entries": [{"name": n, "is_dir": d} for n, d in sorted(entries)]}


class FakeWorker:
    """One zygote plus the worker half of each child conversation."""

    def __init__(self, root=DEFAULT_ROOT, preload=None, extra_env=None):
        self.root = root
        self.preload = DEFAULT_PRELOAD if preload is None else preload
        self.extra_env = extra_env or {}
        self.process = None
        self.control = None
        self.ready = None
        self._stderr = []

    # -- zygote ------------------------------------------------------------

    def start(self):
        ours, theirs = socket.socketpair()
        env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TZ") if k in os.environ}
        env.update(self.extra_env)
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-B", "-c", bootstrap_source()],
            stdin=theirs, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        theirs.close()
        self.control = ours
        for pipe in (self.process.stdout, self.process.stderr):
            threading.Thread(target=self._drain, args=(pipe,), daemon=True).start()
        send_frame(ours, {"op": "boot", "shim": shim_sources(),
                          "preload": self.preload, "root": self.root})
        self.ready = recv_frame(ours)
        if not self.ready or self.ready.get("op") != "ready":
            raise RuntimeError(f"zygote did not become ready: {self.ready!r}\n{self.stderr}")
        return self

    def _drain(self, pipe):
        for line in iter(pipe.readline, b""):
            self._stderr.append(line.decode("utf-8", "replace"))

    @property
    def stderr(self):
        return "".join(self._stderr)

    def stop(self):
        if self.control is not None:
            self.control.close()
            self.control = None
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            for pipe in (self.process.stdout, self.process.stderr):
                pipe.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def spawn(self, execution_id, rlimits=None):
        """(pid, worker end of the child's socket)."""
        ours, theirs = socket.socketpair()
        send_frame(self.control, {"op": "spawn", "execution_id": execution_id,
                                  "rlimits": rlimits or {"as_bytes": None, "cpu_seconds": None}},
                   fds=[theirs.fileno()])
        theirs.close()
        reply = recv_frame(self.control)
        if not reply or reply.get("op") != "spawned":
            ours.close()
            raise RuntimeError(f"spawn refused: {reply!r}")
        return reply["pid"], ours

    # -- one execution -----------------------------------------------------

    def run(self, files, path, function, parameters=None, *, module="auto",
            execution_id="exec-1", max_log_bytes=1 << 20, rlimits=None, timeout=30,
            top_level=None, prefetch=None, gate=None, config=None):
        """Runs `function` of workspace file `path`; returns an Execution.

        `prefetch`: dotted names sent with `run` as code objects.
        `gate`: sends a gated `run`, then calls `gate(sock)`, which is to
        send `go` (or not).
        `config`: {key: (secret?, value)} served to `config`/`secret` requests.
        """
        workspace = Workspace(files)
        pid, sock = self.spawn(execution_id, rlimits)
        execution = Execution(status="died", pid=pid)
        try:
            message = {
                "op": "run", "execution_id": execution_id, "path": path,
                "module": module_name(path) if module == "auto" else module,
                "function": function, "parameters": parameters or {},
                "top_level": workspace.top_level() if top_level is None else top_level,
                "root": self.root, "max_log_bytes": max_log_bytes}
            if gate is not None:
                message["gate"] = True
            blob = None
            if prefetch is not None:
                message["prefetch"], blob = workspace.prefetch(prefetch, self.root)
            send_frame(sock, message)
            if blob is not None:
                sock.sendall(len(blob).to_bytes(4, "big") + blob)
            if gate is not None:
                gate(sock)
            self._converse(sock, workspace, config or {}, execution,
                           time.monotonic() + timeout)
        finally:
            sock.close()
            _kill_group(pid)
        return execution

    def _converse(self, sock, workspace, config, execution, deadline):
        while True:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                message = recv_frame(sock)
            except socket.timeout:
                execution.status = "timeout"
                return
            except (EOFError, ConnectionError):
                return  # died
            if message is None:
                return  # died: closed without a result
            op = message.get("op")
            if op == "log":
                execution.log_frames.append(message["text"])
                continue
            if op == "result":
                execution.status = message["status"]
                execution.value = message.get("value")
                execution.error = message.get("error")
                return
            execution.requests.append(message)
            if op == "find":
                reply = workspace.find(message["name"])
            elif op == "read":
                reply = workspace.read(message["path"])
            elif op == "list":
                reply = workspace.list(message["dir"])
            elif op in ("config", "secret"):
                reply = _config_reply(config, op == "secret", message["key"])
            else:
                raise AssertionError(f"unknown op from child: {message!r}")
            send_frame(sock, reply)


def _config_reply(config, want_secret, key):
    """As the worker answers (PROTOCOL.md, `config` and `secret`)."""
    if key not in config:
        return {"found": False}
    secret, value = config[key]
    if secret != want_secret:
        return {"found": False, "secret": secret}
    return {"found": True, "value": value}


def _kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
