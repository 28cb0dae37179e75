"""item02: relative imports in a package __init__."""
from . import x
from .x import X

PACKAGE = __package__
