"""item10: named like a standard library module: the stdlib one must win."""
WHO = "workspace"
