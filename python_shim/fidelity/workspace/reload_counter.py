"""item12: survives reloads of `reloadable`."""
COUNT = [0]
