"""The restorer phase (not built yet)."""

from __future__ import annotations

from lifecycle.cli._command import Context
from lifecycle.errors import LifecycleError

FLAGS: tuple[str, ...] = ()
ARGS: tuple[int, int | None] = (0, None)
USAGE_ARGS = "[args]..."


def run(ctx: Context) -> None:
    """Not built yet: a clear error and a non-zero exit."""
    raise LifecycleError("the restorer phase is not implemented yet")
