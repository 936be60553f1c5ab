"""Creator: analyze, detect, restore, build and export in one process (for trusted builders).

Usage: creator [flags] <image>
"""

from __future__ import annotations

from dataclasses import replace

from lifecycle.cli._command import Context
from lifecycle.priv import Privileges

FLAGS = ("app", "buildpacks", "build-config", "cache-dir", "cache-image", "daemon", "gid", "launch-cache",
         "launcher", "layers", "oci", "oci-dir", "order", "parallel", "platform", "previous-image",
         "process-type", "project-metadata", "report", "run", "run-image", "sbom-referrer", "skip-restore", "system",
         "tag", "uid", "insecure-registry")
ARGS = (1, 1)
USAGE_ARGS = "<image>"
# What root does before the drop to the CNB user (spec/trust-model.md).
PRIVILEGES = Privileges(chown=("layers", "cache-dir", "launch-cache"), keychain=True)


def run(ctx: Context) -> None:
    """Run the five phases in order; the failing phase's exit code is the creator's."""
    from lifecycle.cli import analyzer, builder, detector, exporter, restorer
    from lifecycle.platform.flags import FLAGS as ALL_FLAGS
    from lifecycle.platform.resolve import sbom_referrer
    from lifecycle.platform.settings import Settings

    s = ctx.settings
    image = ctx.args[0]
    sbom_referrer(s)  # refused with -daemon before anything is built
    given = dict(s.given)
    # -skip-restore is the creator's name for the restorer's -skip-layers.
    given["skip-layers"] = bool(s["skip-restore"]) or None
    inner = replace(ctx, settings=Settings(given, s.environ, s.cwd))
    # The exporter takes the run image the analyzer pinned in analyzed.toml, as a separate exporter
    # run after the analyzer does: the same inputs give the same image either way.
    export_env = {k: v for k, v in s.environ.items() if k not in ALL_FLAGS["run-image"].env}
    export = replace(ctx, settings=Settings({**given, "run-image": None}, export_env, s.cwd))
    steps = (("ANALYZING", analyzer, inner, (image,)), ("DETECTING", detector, inner, ()),
             ("RESTORING", restorer, inner, ()), ("BUILDING", builder, inner, ()),
             ("EXPORTING", exporter, export, (image, *s["tag"])))
    for banner, module, phase_ctx, args in steps:
        ctx.logger.info(f"===> {banner}")
        module.run(replace(phase_ctx, args=args))
