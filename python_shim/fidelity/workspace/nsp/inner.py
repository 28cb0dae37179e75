"""item09: a module inside a top-level namespace package."""
WHERE = __name__
