"""item08: `from x import Y` cycle: a partially initialized module error."""
from pc_b import B

A = "a"
