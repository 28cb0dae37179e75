"""item17: doctests in a workspace module.

>>> add(1, 2)
3
"""


def add(a, b):
    """Adds two things.

    >>> add(2, 3)
    5
    >>> add("a", "b")
    'ab'
    """
    return a + b


class Counter:
    """Counts.

    >>> c = Counter()
    >>> c.bump()
    1
    """

    def __init__(self):
        self.n = 0

    def bump(self):
        """Adds one.

        >>> Counter().bump() + 1
        2
        """
        self.n += 1
        return self.n


def wrong():
    """A doctest that fails on purpose, to compare the failure report.

    >>> wrong()
    'right'
    """
    return "wrong"
