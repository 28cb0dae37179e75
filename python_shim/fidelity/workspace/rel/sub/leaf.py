from . import sib
from .. import y
from ..x import X
from .sib import SIB

PACKAGE = __package__
