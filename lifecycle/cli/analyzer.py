"""Analyzer: reads the run image and the previous image, writes analyzed.toml.

Usage: analyzer [flags] <image>
"""

from __future__ import annotations

from pathlib import Path

from lifecycle.cli._command import Context
from lifecycle.errors import ExitCode, LifecycleError
from lifecycle.priv import Privileges

FLAGS = ("analyzed", "cache-image", "daemon", "gid", "layers", "launch-cache", "oci", "oci-dir",
         "previous-image", "run", "run-image", "skip-layers", "tag", "uid", "insecure-registry")
ARGS = (1, 1)
USAGE_ARGS = "<image>"
# What root does before the drop to the CNB user (spec/trust-model.md).
PRIVILEGES = Privileges(chown=("layers", "launch-cache"), keychain=True)


def run(ctx: Context) -> None:
    """Resolve inputs, analyze, write analyzed.toml."""
    from lifecycle.cli._inputs import check_refs, check_same_registry, run_image, store_for
    from lifecycle.files import analyzed as analyzed_file
    from lifecycle.phases.analyzer import AnalyzeInputs, analyze

    s = ctx.settings
    output = ctx.args[0]
    tags = tuple(s["tag"])
    store = store_for(ctx)
    check_refs(output, *tags, str(s["previous-image"]))
    check_same_registry(output, tags, oci=bool(s["oci"]))
    inputs = AnalyzeInputs(output_image=output, run_image=run_image(ctx, oci=bool(s["oci"])),
                           previous_image=str(s["previous-image"] or output),
                           skip_layers=bool(s["skip-layers"]), layers=Path(s["layers"]))
    check_refs(inputs.run_image)
    result = analyze(inputs, store, ctx.logger)
    try:
        analyzed_file.write(s["analyzed"], result)
    except OSError as exc:
        raise LifecycleError(f"failed to write analyzed: {exc.strerror or exc}: {s['analyzed']}",
                             ExitCode.ANALYZE) from None
