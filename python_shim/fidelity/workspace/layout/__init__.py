"""item03: a regular package."""


def in_package():
    return "layout"
