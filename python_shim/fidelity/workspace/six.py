"""item10: named like a site-packages module: the workspace one wins."""
WHO = "workspace"
