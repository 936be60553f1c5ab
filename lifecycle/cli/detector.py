"""Detector: finds the first buildpack group that passes detection; writes group.toml and plan.toml.

Usage: detector [flags]
"""

from __future__ import annotations

from pathlib import Path

from lifecycle.cli._command import Context
from lifecycle.errors import ExitCode, LifecycleError
from lifecycle.priv import Privileges

FLAGS = ("analyzed", "app", "build-config", "buildpacks", "gid", "group", "layers", "order", "plan",
         "platform", "run", "system", "uid")
ARGS: tuple[int, int | None] = (0, 0)
USAGE_ARGS = "[args]..."
# What root does before the drop to the CNB user (spec/trust-model.md).
PRIVILEGES = Privileges(chown=("layers",))


def run(ctx: Context) -> None:
    """Resolve inputs, detect, write group.toml and plan.toml."""
    from lifecycle.files import group as group_file
    from lifecycle.files import plan as plan_file
    from lifecycle.phases.detector import DetectInputs, detect

    s = ctx.settings
    build_config = Path(s["build-config"]) if s["build-config"] else None
    inputs = DetectInputs(app_dir=Path(s["app"]), buildpacks_dir=Path(s["buildpacks"]),
                          order_path=Path(s["order"]), system_path=Path(s["system"]),
                          platform_dir=Path(s["platform"]), analyzed_path=Path(s["analyzed"]),
                          platform_api=ctx.api, build_config_dir=build_config,
                          exec_env=str(s["exec-env"] or ""), environ=s.environ)
    result = detect(inputs, ctx.logger)
    try:
        group_file.write(Path(s["group"]), result.group)
        plan_file.write(Path(s["plan"]), result.plan)
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        raise LifecycleError(f"failed to detect: {exc.strerror or exc}{where}", ExitCode.DETECT_OTHER) from None
