from . import one

NAME = "two"
