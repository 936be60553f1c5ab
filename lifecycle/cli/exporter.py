"""Exporter: assembles the app image from the run image, buildpack launch layers and the app,
and saves it (as an OCI layout with -oci).

Usage: exporter [flags] <image> [<tag>...]
"""

from __future__ import annotations

from lifecycle.cli._command import Context

FLAGS = ("analyzed", "app", "cache-dir", "cache-image", "daemon", "gid", "group", "launch-cache", "launcher",
         "layers", "oci", "oci-dir", "parallel", "process-type", "project-metadata", "report", "run",
         "run-image", "uid", "insecure-registry")
ARGS = (1, None)
USAGE_ARGS = "<image> [<tag>...]"


def run(ctx: Context) -> None:
    """Resolve inputs, export, write report.toml."""
    from lifecycle.cli._inputs import export_inputs, store_for, write_report
    from lifecycle.phases.exporter import export

    store = store_for(ctx)
    inputs = export_inputs(ctx, store, output=ctx.args[0], tags=tuple(ctx.args[1:]))
    result = export(inputs, store, ctx.logger)
    write_report(ctx, result)
