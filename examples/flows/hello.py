"""Example workflow: imports a helper package from the workspace."""

from runeflow import workflow

from helpers import greet


@workflow(name="hello", description="Greet someone, using the helpers package.", timeout=30)
def hello(name: str = "world", times: int = 1, excited: bool = False) -> dict:
    """Greet `name` `times` times."""
    lines = [greet(name, excited=excited) for _ in range(times)]
    return {"greetings": lines, "count": len(lines)}
