"""Detector: finds the first buildpack group that passes detection; writes group.toml and plan.toml.

Usage: detector [flags]
"""

from __future__ import annotations

from pathlib import Path

from lifecycle.cli._command import Context
from lifecycle.priv import Privileges

FLAGS = ("analyzed", "app", "build-config", "buildpacks", "gid", "group", "layers", "order", "plan",
         "platform", "run", "system", "uid")
ARGS: tuple[int, int | None] = (0, 0)
USAGE_ARGS = "[args]..."
# What root does before the drop to the CNB user (spec/trust-model.md).
PRIVILEGES = Privileges(chown=("layers",))


def run(ctx: Context) -> None:
    """Resolve inputs, detect, write group.toml and plan.toml."""
    from lifecycle.phases.detector import detect, write_detected
    from lifecycle.platform.resolve import detect_inputs

    s = ctx.settings
    write_detected(detect(detect_inputs(s, ctx.api), ctx.logger), Path(s["group"]), Path(s["plan"]))
