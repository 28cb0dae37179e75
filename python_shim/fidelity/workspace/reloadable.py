"""item12: counts how many times its body ran."""
from reload_counter import COUNT

COUNT[0] += 1
LOADS = COUNT[0]


def stamp():
    return LOADS
