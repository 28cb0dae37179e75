"""item07: an exception class defined in the workspace."""
ATTEMPTS = []


class ImportTimeError(Exception):
    """Raised by raises_at_import while it is being imported."""
