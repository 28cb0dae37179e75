"""Plain module: imported by workflows, never run on its own."""

GREETING = "Hello"


def greet(name: str, excited: bool = False) -> str:
    """Return a greeting for `name`.

    >>> greet("Ada")
    'Hello, Ada.'
    """
    return f"{GREETING}, {name}{'!' if excited else '.'}"
