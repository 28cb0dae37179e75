"""item08: a circular import that works (attribute access at call time)."""
import cyc_b

A = "a"


def b_value():
    return cyc_b.B
