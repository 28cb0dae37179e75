from .. import y
from ..x import X as XFromSub

PACKAGE = __package__
