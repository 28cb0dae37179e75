"""item04: a call chain whose traceback must show these lines."""


def outer(n):
    return middle(n + 1)


def middle(n):
    values = {"n": n}
    return inner(values)


def inner(values):
    raise KeyError("missing: %d" % values["n"])
