"""A warning's report shows this file's source line (linecache)."""
import warnings


def old():
    warnings.warn("old() is deprecated", DeprecationWarning, stacklevel=1)
    return 1
