# Runeflow zygote bootstrap, run as `python3 -I -B -c <this file>` with the
# control socket as fd 0 (python_shim/PROTOCOL.md). It reads the `boot`
# frame, makes the shim sources it carries importable as the package
# `runeflow` (filenames `<runeflow-shim>/<path>`, nothing on disk), and hands
# over to runeflow._zygote.main. Kept small: it cannot use the shim's helpers.
import importlib.util
import json
import sys
import socket

sys.dont_write_bytecode = True
PREFIX = "<runeflow-shim>/"


def recv_exact(sock, size):
    buf = b""
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            sys.exit("runeflow bootstrap: control socket closed before `boot`")
        buf += chunk
    return buf


class ShimImporter:
    """Finder and loader for the shim sources carried by `boot`."""

    def __init__(self, files):
        self.files = files

    def _path(self, name):
        base = name.replace(".", "/")
        for path in (base + "/__init__.py", base + ".py"):
            if path in self.files:
                return path
        return None

    def find_spec(self, name, path=None, target=None):
        rel = name.partition(".")[0] == "runeflow" and self._path(name)
        if not rel:
            return None
        is_package = rel.endswith("/__init__.py")
        spec = importlib.util.spec_from_loader(
            name, self, origin=PREFIX + rel, is_package=is_package)
        spec.has_location = True
        if is_package:
            spec.submodule_search_locations = [PREFIX + rel.rpartition("/")[0]]
        return spec

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        exec(self.get_code(module.__name__), module.__dict__)

    def get_source(self, name):
        return self.files[self._path(name)]

    def get_code(self, name):
        rel = self._path(name)
        return compile(self.files[rel], PREFIX + rel, "exec", dont_inherit=True)

    def is_package(self, name):
        return self._path(name).endswith("/__init__.py")


def _not_dumpable():
    """PR_SET_DUMPABLE 0: /proc/<pid>/{environ,mem,...} become root-owned and
    same-uid ptrace is refused, so user code cannot read this process (the
    flag is reset by execve, so the worker's own setting does not carry over).
    """
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


_not_dumpable()
control = socket.socket(fileno=0)
boot = json.loads(recv_exact(control, int.from_bytes(recv_exact(control, 4), "big")))
if boot.get("op") != "boot" or not isinstance(boot.get("shim"), dict):
    sys.exit("runeflow bootstrap: the first control frame must be `boot`")
sys.meta_path.insert(0, ShimImporter(boot["shim"]))
if boot.get("role") == "compiler":
    import runeflow._compiler  # noqa: E402 - only importable now
    runeflow._compiler.main(control, boot)
else:
    import runeflow._zygote  # noqa: E402 - only importable now
    runeflow._zygote.main(control, boot)
