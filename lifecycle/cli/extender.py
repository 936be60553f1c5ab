"""Extender: would apply image extensions' Dockerfiles to the build or run image. This lifecycle has
no image extensions, so every call is one ``ERROR:`` line and exit 3, whatever the flags (pack
passes the extender's own flags, which are not parsed).

Usage: extender [flags]
"""

from __future__ import annotations

from lifecycle.cli._command import Context
from lifecycle.errors import ExitCode, LifecycleError

UNSUPPORTED = "image extensions are not supported: this lifecycle has no extender"
FLAGS: tuple[str, ...] = ()
ARGS: tuple[int, int | None] = (0, None)
USAGE_ARGS = "[args]..."


def run(ctx: Context) -> None:
    """Refuse (only reached when the refusal before parsing is bypassed)."""
    raise LifecycleError(UNSUPPORTED, ExitCode.INVALID_ARGS)
