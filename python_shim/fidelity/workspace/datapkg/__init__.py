"""item13: a package with data files and subpackages."""
