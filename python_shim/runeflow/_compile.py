"""How workspace source becomes a code object, in one place.

Used by the loader in an execution's child (when the worker sent source)
and by the worker's trusted compiler process (runeflow._compiler), so a
code object the worker caches is exactly what the child would compile.
"""

import importlib.util


def normalise_source(source):
    """Source text as a disk loader would decode it (BOM, universal newlines).

    The worker sends text (the file's UTF-8 content); bytes are decoded as
    ``importlib.util.decode_source`` does (PEP 263 cookie). compile() of a
    str ignores any coding cookie, so a cookie never re-decodes text.
    """
    if isinstance(source, bytes):
        return importlib.util.decode_source(source)
    if source.startswith("\ufeff"):
        source = source[1:]
    return source.replace("\r\n", "\n").replace("\r", "\n")


def compile_source(source, filename):
    """The module's code object, as SourceLoader would build it (no __pycache__)."""
    return compile(source, filename, "exec", dont_inherit=True)
