"""item09: a namespace package (no __init__) inside a regular package."""
WHERE = __name__
