"""Analyzer: reads the run image and the previous image, writes analyzed.toml.

Usage: analyzer [flags] <image>
"""

from __future__ import annotations

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
    from lifecycle.files import analyzed as analyzed_file
    from lifecycle.phases.analyzer import analyze
    from lifecycle.platform.resolve import analyze_inputs, image_store

    s = ctx.settings
    store = image_store(s, ctx.keychain)
    inputs = analyze_inputs(s, ctx.args[0])
    result = analyze(inputs, store, ctx.logger)
    try:
        analyzed_file.write(s["analyzed"], result)
    except OSError as exc:
        raise LifecycleError(f"failed to write analyzed: {exc.strerror or exc}: {s['analyzed']}",
                             ExitCode.ANALYZE) from None
