"""Import hook: workspace modules come from the worker, not from a disk.

Virtual modules must be indistinguishable from files on disk, so the hook
copies the disk machinery's shape instead of short-circuiting it:

* ``WorkspaceFinder`` (``sys.meta_path[0]``) answers **top-level** names
  only, playing the part of a workspace folder at ``sys.path[0]``.
* ``Workspace.path_hook`` (``sys.path_hooks[0]``) turns every virtual folder
  (``<root>``, ``<root>/pkg``, ...) into a ``WorkspacePathFinder``, the
  workspace's ``FileFinder``: ``PathFinder`` consults it for submodules
  through the parent's ``__path__``, exactly as on disk, and
  ``pkgutil.iter_modules`` lists folders through it.
* ``WorkspaceLoader`` (one per module, like ``SourceFileLoader``) compiles
  the source in memory with the virtual absolute path as filename, seeds
  ``linecache`` and serves ``get_source``/``get_data``/resources. It never
  writes bytecode.

Shadowing rule (also in PROTOCOL.md, "Shadowing rule"): a top-level name is
looked up in the workspace first, before builtins, frozen modules and
site-packages, when it is in the execution's ``top_level`` list, EXCEPT
that names in ``sys.stdlib_module_names`` and the SDK package ``runeflow``
always resolve normally. So a workspace ``requests.py`` wins over the
installed one (as ``sys.path[0]`` would on disk), while a workspace
``json.py`` or ``logging/`` can never break the standard library (on disk it
would, for any module not imported yet). A preloaded non-stdlib module that
the workspace shadows is dropped from ``sys.modules`` when the hook is
installed, so the rule does not depend on the zygote's preload list. Any
other top-level name costs no round trip.
"""

import errno
import importlib.abc
import importlib.machinery
import importlib.util
import io
import linecache
import marshal
import os
import posixpath
import sys

from runeflow import _protocol
from runeflow._compile import compile_source, normalise_source

try:
    from importlib._bootstrap_external import _NamespacePath
except ImportError:  # pragma: no cover - CPython always has it
    _NamespacePath = None

#: The SDK package: always the shim's copy, never a workspace folder.
SDK_PACKAGE = "runeflow"

_KINDS = ("module", "package", "namespace")


class Workspace:
    """One execution's view of the workspace: its root, names and channel."""

    def __init__(self, channel, root, top_level, prefetched=None):
        self.channel = channel
        self.root = posixpath.normpath(root)
        self.top_level = frozenset(top_level)
        #: dotted name -> find result the worker sent with `run` (see find)
        self.prefetched = prefetched or {}

    # -- names and paths ------------------------------------------------

    def owns(self, top_name):
        """True when the top-level name `top_name` resolves in the workspace."""
        return (top_name in self.top_level
                and top_name != SDK_PACKAGE
                and top_name not in sys.stdlib_module_names)

    def abspath(self, rel):
        """Virtual absolute path of a workspace-relative path."""
        return posixpath.join(self.root, rel) if rel else self.root

    def relpath(self, path):
        """Workspace-relative path of `path`, or None when outside the root."""
        if not isinstance(path, str) or not path:
            return None
        path = posixpath.normpath(path)
        if path == self.root:
            return ""
        prefix = self.root.rstrip("/") + "/"
        return path[len(prefix):] if path.startswith(prefix) else None

    # -- requests to the worker -----------------------------------------

    def _ask(self, message, error):
        """One round trip; `error` (an exception class) when we cannot ask."""
        try:
            return self.channel.request(message)
        except _protocol.ForeignProcessError as exc:
            raise error(f"workspace files are served to the execution's own process only: {exc}") from None

    def find(self, dotted):
        """(kind, rel path, source, code) for a dotted name, or None.

        The first lookup of a module the worker sent along with `run` costs
        no round trip; it is used once, so a later lookup (a reload) asks
        the worker like any other. `code` is a marshalled code object from
        the worker's trusted compiler, or None (then `source` is set).
        """
        hit = self.prefetched.pop(dotted, None)
        if hit is not None:
            return hit
        reply = self._ask({"op": "find", "name": dotted}, ImportError)
        if not _found(reply):
            return None
        kind, path, source = reply.get("kind"), reply.get("path"), reply.get("source")
        if kind not in _KINDS or not isinstance(path, str):
            raise ImportError(f"bad find reply for {dotted!r}: {reply!r}", name=dotted)
        if kind != "namespace" and not isinstance(source, str):
            raise ImportError(f"find reply for {dotted!r} has no source", name=dotted)
        return kind, path, source, None

    def read(self, rel):
        """Text of a workspace file, or None when there is none."""
        reply = self._ask({"op": "read", "path": rel}, OSError)
        if not _found(reply):
            return None
        content = reply.get("content")
        if not isinstance(content, str):
            raise OSError(f"bad read reply for {rel!r}")
        return content

    def list(self, rel):
        """[(name, is_dir)] directly inside a workspace folder, sorted."""
        reply = self._ask({"op": "list", "dir": rel}, OSError)
        entries = reply.get("entries") if isinstance(reply, dict) else None
        try:
            return sorted((e["name"], bool(e.get("is_dir"))) for e in entries)
        except (TypeError, KeyError, AttributeError):
            raise OSError(f"bad list reply for {rel!r}: {reply!r}") from None

    # -- import machinery -----------------------------------------------

    def spec(self, fullname, found):
        """The ModuleSpec a disk FileFinder would build for `found`."""
        kind, rel, source, code = found
        location = self.abspath(rel)
        if kind == "namespace":
            spec = importlib.machinery.ModuleSpec(fullname, None, is_package=True)
            spec.submodule_search_locations = [location]
            return spec
        is_package = kind == "package"
        loader = WorkspaceLoader(self, fullname, location, source, is_package, code)
        return importlib.util.spec_from_file_location(
            fullname, location, loader=loader,
            submodule_search_locations=[] if is_package else None)

    def path_hook(self, path):
        """sys.path_hooks entry: a finder for virtual folders only."""
        rel = self.relpath(path)
        if rel is None:
            raise ImportError("not a workspace folder", path=path)
        return WorkspacePathFinder(self, rel)


def _found(reply):
    if not isinstance(reply, dict) or not isinstance(reply.get("found"), bool):
        raise ImportError(f"bad reply from the worker: {reply!r}")
    return reply["found"]


def _join(folder, name):
    return f"{folder}/{name}" if folder else name


def _module_name(filename):
    """inspect.getmodulename without importing inspect."""
    suffixes = sorted(importlib.machinery.all_suffixes(), key=len, reverse=True)
    for suffix in suffixes:
        if filename.endswith(suffix):
            return filename[:-len(suffix)]
    return None


class WorkspacePathFinder:
    """Path-entry finder for one virtual folder: the workspace's FileFinder."""

    def __init__(self, workspace, folder):
        self.workspace = workspace
        self.folder = folder
        self.path = workspace.abspath(folder)

    def find_spec(self, fullname, target=None):
        """Spec for `fullname` inside this folder (one round trip), or None."""
        rel = _join(self.folder, fullname.rpartition(".")[2])
        found = self.workspace.find(rel.replace("/", "."))
        return None if found is None else self.workspace.spec(fullname, found)

    def invalidate_caches(self):
        """Nothing cached: every lookup asks the worker's snapshot."""

    def iter_modules(self, prefix=""):
        """(name, ispkg) pairs, as pkgutil lists a disk folder.

        Same rules as pkgutil's FileFinder support: sorted entries, modules
        by suffix, folders only when they hold an ``__init__`` module.
        """
        yielded = set()
        for name, is_dir in self.workspace.list(self.folder):
            modname = _module_name(name)
            if modname == "__init__" or modname in yielded:
                continue
            ispkg = False
            if not modname and is_dir and "." not in name:
                inside = self.workspace.list(_join(self.folder, name))
                if not any(_module_name(n) == "__init__" for n, _ in inside):
                    continue
                modname, ispkg = name, True
            if modname and "." not in modname:
                yielded.add(modname)
                yield prefix + modname, ispkg

    def __repr__(self):
        return f"WorkspacePathFinder({self.path!r})"


def _fixed_namespace_path(name, parent_path):
    """A workspace namespace package's path never changes within an execution."""
    return None


class WorkspaceFinder:
    """The one meta path finder: top-level workspace names (see module doc)."""

    def __init__(self, workspace):
        self.workspace = workspace
        self._root = WorkspacePathFinder(workspace, "")

    def find_spec(self, fullname, path=None, target=None):
        if "." in fullname:
            return self._prefetched_submodule(fullname, path)
        if not self.workspace.owns(fullname):
            return None  # no round trip
        spec = self._root.find_spec(fullname, target)
        if spec is not None and spec.loader is None and _NamespacePath is not None:
            # What PathFinder does for a namespace portion on disk.
            spec.origin = None
            spec.submodule_search_locations = _NamespacePath(
                fullname, list(spec.submodule_search_locations), _fixed_namespace_path)
        return spec

    def _prefetched_submodule(self, fullname, path):
        """A module or package the worker sent with `run`, found at once.

        Only when the parent's ``__path__`` is exactly its workspace folder:
        then PathFinder would find the same spec through that folder's
        WorkspacePathFinder, after asking the other finders first. Anything
        else (not sent, a namespace package, a ``__path__`` the user
        changed) goes the disk-like way, through PathFinder.
        """
        hit = self.workspace.prefetched.get(fullname)
        if hit is None or hit[0] == "namespace" or path is None:
            return None
        folder = self.workspace.abspath(fullname.rpartition(".")[0].replace(".", "/"))
        if list(path) != [folder]:
            return None
        return self.workspace.spec(fullname, self.workspace.find(fullname))

    def invalidate_caches(self):
        """Nothing cached."""

    def __repr__(self):
        return f"WorkspaceFinder({self.workspace.root!r})"


def seed_linecache(filename, source):
    """Lets tracebacks, inspect and doctest show the source of `filename`.

    An mtime of None keeps ``linecache.checkcache`` from dropping it.
    """
    lines = io.StringIO(source).readlines()
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    linecache.cache[filename] = (len(source), None, lines, filename)


class WorkspaceLoader(importlib.abc.ExecutionLoader, importlib.abc.ResourceLoader):
    """Loads one workspace module from what the worker sent with `find`.

    Either source (compiled here) or a marshalled code object from the
    worker's trusted compiler, made by the same ``compile_source`` from the
    same text; then the source is fetched only when something asks for it
    (a traceback, ``inspect``), through ``linecache``'s lazy entries.
    A new loader is made on every `find`, so ``importlib.reload`` runs the
    module the worker serves now, never a cached copy.
    """

    def __init__(self, workspace, fullname, path, source, is_package, code=None):
        self.name = fullname
        self.path = path
        self._workspace = workspace
        self._source = None if source is None else normalise_source(source)
        self._code = code if self._source is None else None
        self._is_package = is_package

    def _check_name(self, fullname):
        if fullname is not None and fullname != self.name:
            raise ImportError(f"loader for {self.name} cannot handle {fullname}", name=fullname)

    def create_module(self, spec):
        """Default module creation."""
        return None

    def exec_module(self, module):
        exec(self._compile(), module.__dict__)

    def _compile(self):
        # Compiled in memory: nothing is written to a __pycache__.
        if self._code is not None:
            linecache.lazycache(self.path, {"__name__": self.name, "__loader__": self})
            return marshal.loads(self._code)
        seed_linecache(self.path, self.get_source(self.name))
        return compile_source(self._source, self.path)

    def get_code(self, fullname):
        self._check_name(fullname)
        return self._compile()

    def get_source(self, fullname):
        self._check_name(fullname)
        if self._source is None:
            content = self._workspace.read(self._workspace.relpath(self.path))
            if content is None:
                raise ImportError(f"source of {self.name!r} is gone", name=self.name)
            self._source = normalise_source(content)
        return self._source

    def is_package(self, fullname):
        self._check_name(fullname)
        return self._is_package

    def get_filename(self, fullname):
        self._check_name(fullname)
        return self.path

    def get_data(self, path):
        """Bytes of a workspace file by virtual path (pkgutil.get_data)."""
        rel = self._workspace.relpath(path)
        if rel is None:  # outside the workspace: a real file, as FileLoader reads it
            with open(path, "rb") as file:
                return file.read()
        content = self._workspace.read(rel)
        if content is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        return content.encode("utf-8")

    def get_resource_reader(self, fullname):
        """importlib.resources support: the module's folder, like FileReader."""
        self._check_name(fullname)
        from runeflow._resources import WorkspaceResources
        folder = self._workspace.relpath(posixpath.dirname(self.path))
        return WorkspaceResources(self._workspace, folder)

    def __repr__(self):
        return f"<WorkspaceLoader {self.name!r} from {self.path!r}>"


#: Module name of the spare's warm-up import (never a workspace name).
_WARM_NAME = "__runeflow_warm_up__"


def warm_up_loader():
    """Imports an empty module through WorkspaceLoader and forgets it.

    Called by an idle spare (see _zygote._warm_import_machinery): it takes
    the path a prefetched workspace module takes, so the pages it writes
    are copied before the execution starts. Leaves no trace behind.
    """
    import importlib._bootstrap as bootstrap
    workspace = Workspace(None, "/", ())
    code = marshal.dumps(compile("", _WARM_NAME, "exec", dont_inherit=True))
    loader = WorkspaceLoader(workspace, _WARM_NAME, f"/{_WARM_NAME}.py", None, False, code)
    spec = importlib.util.spec_from_file_location(_WARM_NAME, f"/{_WARM_NAME}.py", loader=loader)
    try:
        bootstrap._load(spec)
    finally:
        sys.modules.pop(_WARM_NAME, None)
        linecache.cache.pop(f"/{_WARM_NAME}.py", None)


def install(channel, root, top_level, prefetched=None):
    """Makes the workspace importable in this process; returns the Workspace."""
    sys.dont_write_bytecode = True
    workspace = Workspace(channel, root, top_level, prefetched)
    _forget_shadowed(workspace)
    sys.meta_path.insert(0, WorkspaceFinder(workspace))
    sys.path_hooks.insert(0, workspace.path_hook)
    _forget_cached_finders(workspace)
    return workspace


def prepare(root):
    """Zygote-time: drops cached finders of the virtual folders once.

    A child whose `run` has the same root then skips that scan of
    sys.path_importer_cache (see _forget_cached_finders).
    """
    _forget_cached_finders(Workspace(None, root, ()))


#: (root, cache size) right after the last scan; the zygote imports nothing
#: after its boot, so in its children the cache is still as scanned.
_scanned = None


def _forget_cached_finders(workspace):
    """Drops sys.path_importer_cache entries for virtual folders.

    PathFinder must ask the workspace path hook about them, not a finder
    (or a cached None) it found before the hook existed. The scan normalises
    every key, which in a child would touch (and copy) the zygote's pages,
    so it is skipped when nothing changed since the last one.
    """
    global _scanned
    if _scanned == (workspace.root, len(sys.path_importer_cache)):
        return
    for entry in list(sys.path_importer_cache):
        if workspace.relpath(entry) is not None:
            del sys.path_importer_cache[entry]
    _scanned = (workspace.root, len(sys.path_importer_cache))


def _forget_shadowed(workspace):
    """Drops preloaded modules that a workspace top-level name shadows.

    Scans sys.modules only when there is something to drop: touching every
    entry would copy many of the zygote's shared memory pages into the child.
    """
    shadowed = {name for name in workspace.top_level
                if name in sys.modules and workspace.owns(name)}
    if not shadowed:
        return
    prefixes = tuple(name + "." for name in shadowed)
    for name in [m for m in sys.modules if m in shadowed or m.startswith(prefixes)]:
        del sys.modules[name]
