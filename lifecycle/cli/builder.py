"""Builder: runs each buildpack of group.toml; writes <layers>/config/metadata.toml.

Usage: builder [flags]
"""

from __future__ import annotations

from lifecycle.cli._command import Context
from lifecycle.priv import Privileges

FLAGS = ("analyzed", "app", "build-config", "buildpacks", "gid", "group", "layers", "plan", "platform", "uid")
ARGS: tuple[int, int | None] = (0, 0)
USAGE_ARGS = "[args]..."
# What root does before the drop to the CNB user (spec/trust-model.md).
PRIVILEGES = Privileges(chown=("layers",))


def run(ctx: Context) -> None:
    """Resolve inputs, build, write metadata.toml."""
    from lifecycle.phases.builder import build_and_record
    from lifecycle.platform.resolve import build_inputs

    build_and_record(build_inputs(ctx.settings, ctx.api, ctx.logger), ctx.logger)
