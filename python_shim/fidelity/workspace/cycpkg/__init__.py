"""item08: a cycle through `from . import` inside a package works."""
from . import one
