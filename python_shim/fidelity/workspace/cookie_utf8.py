# -*- coding: utf-8 -*-
"""item14: Café ✓ — a PEP 263 cookie and non-ASCII text."""
TEXT = "café ✓ naïve"


def greet():
    return "¡hola, " + TEXT + "!"
