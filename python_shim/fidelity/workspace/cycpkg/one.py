from . import two

NAME = "one"
