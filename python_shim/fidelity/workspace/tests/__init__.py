"""item17: the workspace test package."""
