"""Exporter: assembles the app image from the run image, buildpack launch layers and the app,
and saves it (as an OCI layout with -oci); then writes the build cache.

Usage: exporter [flags] <image> [<tag>...]
"""

from __future__ import annotations

from lifecycle.cli._command import Context
from lifecycle.priv import Privileges

FLAGS = ("analyzed", "app", "cache-dir", "cache-image", "daemon", "gid", "group", "launch-cache", "launcher",
         "layers", "oci", "oci-dir", "parallel", "process-type", "project-metadata", "report", "run",
         "run-image", "sbom-referrer", "uid", "insecure-registry")
ARGS = (1, None)
USAGE_ARGS = "<image> [<tag>...]"
# What root does before the drop to the CNB user (spec/trust-model.md).
PRIVILEGES = Privileges(chown=("cache-dir", "launch-cache"), keychain=True, daemon=True,
                        layout_outputs=True)


def run(ctx: Context) -> None:
    """Resolve inputs, export the image and the cache (concurrently with -parallel), write report.toml."""
    from pathlib import Path

    from lifecycle.phases.export_phase import export_all, write_own_sboms
    from lifecycle.platform.resolve import export_cache, export_inputs, image_store

    s = ctx.settings
    store = image_store(s, ctx.keychain, ctx.daemon)
    inputs = export_inputs(s, str(ctx.api), store, ctx.logger, output=ctx.args[0], tags=tuple(ctx.args[1:]))
    write_own_sboms(inputs.layers)
    cache = export_cache(s, ctx.logger, ctx.keychain)
    export_all(inputs, store, cache, parallel=bool(s["parallel"]), report=Path(s["report"]), logger=ctx.logger)
