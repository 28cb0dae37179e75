"""item03: a plain module (no __path__)."""
import dataclasses


def func():
    return 1


class Thing:
    def method(self):
        return 2


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0
