"""importlib.resources for workspace packages (imported only when used).

``importlib.resources.files('pkg')`` returns a ``WorkspacePath``: a
read-only, pathlib-like Traversable whose ``str()`` is the virtual absolute
path a disk package's ``pathlib.Path`` would print. Reads, listings and
existence checks ask the worker (``read`` / ``list``). There is no real
file, so ``as_file`` copies the content to a temporary file, as it does for
zip imports.
"""

import errno
import io
import os
import posixpath

from importlib.resources.abc import Traversable, TraversableResources


class WorkspaceResources(TraversableResources):
    """Resource reader of one workspace folder."""

    def __init__(self, workspace, folder):
        self._workspace = workspace
        self._folder = folder

    def files(self):
        return WorkspacePath(self._workspace, self._folder)


class WorkspacePath(Traversable):
    """A file or folder of the workspace, by workspace-relative path."""

    def __init__(self, workspace, rel):
        self._workspace = workspace
        self._rel = rel

    @property
    def name(self):
        return posixpath.basename(self._rel)

    @property
    def suffix(self):
        return posixpath.splitext(self.name)[1]

    @property
    def stem(self):
        return posixpath.splitext(self.name)[0]

    @property
    def parent(self):
        return WorkspacePath(self._workspace, posixpath.dirname(self._rel))

    def __str__(self):
        return self._workspace.abspath(self._rel)

    def __repr__(self):
        return f"WorkspacePath({str(self)!r})"

    def __eq__(self, other):
        return isinstance(other, WorkspacePath) and str(self) == str(other)

    def __hash__(self):
        return hash(str(self))

    def joinpath(self, *descendants):
        """Like pathlib: joins without checking that the target exists."""
        rel = self._rel
        for part in descendants:
            rel = posixpath.join(rel, os.fspath(part)) if rel else os.fspath(part)
        rel = posixpath.normpath(rel) if rel else ""
        if rel in (".", "/") or rel.startswith("../") or rel == "..":
            rel = ""  # never leave the workspace
        return WorkspacePath(self._workspace, rel.lstrip("/"))

    def __truediv__(self, child):
        return self.joinpath(child)

    def _entry(self):
        """(exists, is_dir) from the parent folder's listing."""
        if not self._rel:
            return True, True
        parent, name = posixpath.split(self._rel)
        for entry, is_dir in self._workspace.list(parent):
            if entry == name:
                return True, is_dir
        return False, False

    def is_dir(self):
        exists, is_dir = self._entry()
        return exists and is_dir

    def is_file(self):
        exists, is_dir = self._entry()
        return exists and not is_dir

    def exists(self):
        return self._entry()[0]

    def iterdir(self):
        if not self.is_dir():
            raise self._error(errno.ENOTDIR if self.exists() else errno.ENOENT)
        for name, _is_dir in self._workspace.list(self._rel):
            yield WorkspacePath(self._workspace, posixpath.join(self._rel, name) if self._rel else name)

    def read_bytes(self):
        content = self._workspace.read(self._rel) if self._rel else None
        if content is None:
            raise self._error(errno.EISDIR if self.is_dir() else errno.ENOENT)
        return content.encode("utf-8")

    def read_text(self, encoding=None, errors=None):
        return self.read_bytes().decode(encoding or "utf-8", errors or "strict")

    def open(self, mode="r", *args, **kwargs):
        if mode == "rb":
            return io.BytesIO(self.read_bytes())
        if mode == "r":
            kwargs.setdefault("encoding", "utf-8")
            return io.TextIOWrapper(io.BytesIO(self.read_bytes()), *args, **kwargs)
        raise ValueError(f"Invalid mode value {mode!r}, only 'r' and 'rb' are supported")

    def _error(self, code):
        cls = {errno.ENOENT: FileNotFoundError, errno.ENOTDIR: NotADirectoryError,
               errno.EISDIR: IsADirectoryError}[code]
        return cls(code, os.strerror(code), str(self))
