"""Analyzer: reads the run image and the previous image, writes analyzed.toml.

Usage: analyzer [flags] <image>
"""

from __future__ import annotations

from lifecycle.cli._command import Context
from lifecycle.priv import Privileges

FLAGS = ("analyzed", "cache-image", "daemon", "gid", "layers", "launch-cache", "oci", "oci-dir",
         "previous-image", "run", "run-image", "skip-layers", "tag", "uid", "insecure-registry")
ARGS = (1, 1)
USAGE_ARGS = "<image>"
# What root does before the drop to the CNB user (spec/trust-model.md).
PRIVILEGES = Privileges(chown=("layers", "launch-cache"), keychain=True, daemon=True)


def run(ctx: Context) -> None:
    """Resolve inputs (with the access checks), analyze, write analyzed.toml."""
    from lifecycle.phases.analyzer import analyze, write_analyzed
    from lifecycle.platform.resolve import image_store, prepare_analyze

    s = ctx.settings
    store = image_store(s, ctx.keychain, ctx.daemon)
    inputs = prepare_analyze(s, ctx.args[0], store, ctx.logger, ctx.keychain)
    write_analyzed(s["analyzed"], analyze(inputs, store, ctx.logger))
