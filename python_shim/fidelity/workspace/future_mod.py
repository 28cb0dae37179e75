"""`from __future__ import annotations` applies inside workspace modules."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Pair:
    left: int
    right: list[Pair] | None = None
