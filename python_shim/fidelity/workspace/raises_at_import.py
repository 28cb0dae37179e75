"""item07: raises while being imported."""
from fixture_errors import ATTEMPTS, ImportTimeError

ATTEMPTS.append(__name__)


def explode():
    raise ImportTimeError("boom at import", 42)


explode()
