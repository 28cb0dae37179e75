"""item05: inspect.getsource on a function, a class and this module."""
import functools

CONSTANT = 1


def plain(a, b=2):
    """Adds."""
    return a + b


class Shape:
    """A class."""

    sides = 0

    def area(self):
        return 0


def decorator(fn):
    @functools.wraps(fn)
    def wrapper(*args):
        return fn(*args)

    return wrapper


@decorator
def decorated(x):
    return x * 2


square = lambda v: v * v  # noqa: E731
