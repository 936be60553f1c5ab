"""Creator: analyze, detect, restore, build and export in one process (for trusted builders).

Usage: creator [flags] <image>
"""

from __future__ import annotations

from dataclasses import replace

from lifecycle.cli._command import Context

FLAGS = ("app", "buildpacks", "build-config", "cache-dir", "cache-image", "daemon", "gid", "launch-cache",
         "launcher", "layers", "oci", "oci-dir", "order", "parallel", "platform", "previous-image",
         "process-type", "project-metadata", "report", "run", "run-image", "skip-restore", "system", "tag", "uid",
         "insecure-registry")
ARGS = (1, 1)
USAGE_ARGS = "<image>"


def run(ctx: Context) -> None:
    """Run the five phases in order; the failing phase's exit code is the creator's."""
    from lifecycle.cli import analyzer, builder, detector, exporter, restorer
    from lifecycle.platform.settings import Settings

    s = ctx.settings
    image = ctx.args[0]
    given = dict(s.given)
    # -skip-restore is the creator's name for the restorer's -skip-layers.
    given["skip-layers"] = bool(s["skip-restore"]) or None
    inner = replace(ctx, settings=Settings(given, s.environ, s.cwd))
    steps = (("ANALYZING", analyzer, (image,)), ("DETECTING", detector, ()), ("RESTORING", restorer, ()),
             ("BUILDING", builder, ()), ("EXPORTING", exporter, (image, *s["tag"])))
    for banner, module, args in steps:
        ctx.logger.info(f"===> {banner}")
        module.run(replace(inner, args=args))
