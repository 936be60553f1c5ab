"""Builder: runs each buildpack of group.toml; writes <layers>/config/metadata.toml.

Usage: builder [flags]
"""

from __future__ import annotations

from pathlib import Path

from lifecycle.cli._command import Context
from lifecycle.errors import ExitCode, LifecycleError
from lifecycle.priv import Privileges

FLAGS = ("analyzed", "app", "build-config", "buildpacks", "gid", "group", "layers", "plan", "platform", "uid")
ARGS: tuple[int, int | None] = (0, 0)
USAGE_ARGS = "[args]..."
# What root does before the drop to the CNB user (spec/trust-model.md).
PRIVILEGES = Privileges(chown=("layers",))


def run(ctx: Context) -> None:
    """Resolve inputs, build, write metadata.toml."""
    from lifecycle.files import analyzed as analyzed_file
    from lifecycle.files import group as group_file
    from lifecycle.files import metadata as metadata_file
    from lifecycle.files import plan as plan_file
    from lifecycle.phases.builder import BuildInputs, build

    s = ctx.settings
    layers = Path(s["layers"])
    analyzed_path = Path(s["analyzed"])
    analyzed = analyzed_file.read(analyzed_path)
    if analyzed is None:
        ctx.logger.warning(f'No analyzed metadata found at path "{analyzed_path}"')
    build_config = Path(s["build-config"]) if s["build-config"] else None
    inputs = BuildInputs(app_dir=Path(s["app"]), layers_dir=layers, platform_dir=Path(s["platform"]),
                         buildpacks_dir=Path(s["buildpacks"]), group=group_file.read(Path(s["group"])),
                         plan=plan_file.read(Path(s["plan"])), platform_api=ctx.api, analyzed=analyzed,
                         build_config_dir=build_config, exec_env=str(s["exec-env"] or ""),
                         environ=s.environ)
    try:
        metadata = build(inputs, ctx.logger)
        metadata_file.write(layers / "config" / "metadata.toml", metadata)
    except OSError as exc:  # e.g. a buildpack left a tree the CNB user may not read (spec/trust-model.md)
        where = f": {exc.filename}" if exc.filename else ""
        raise LifecycleError(f"failed to build: {exc.strerror or exc}{where}", ExitCode.BUILD_OTHER) from None
