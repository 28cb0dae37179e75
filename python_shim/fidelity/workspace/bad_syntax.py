"""item06: a module that does not compile."""
GOOD = 1


def broken(:
    pass
