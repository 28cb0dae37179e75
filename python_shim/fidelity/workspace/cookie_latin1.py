# -*- coding: latin-1 -*-
"""item14: a latin-1 cookie (ASCII content, so the file is the same bytes in both encodings)."""
TEXT = "caf\xe9"
