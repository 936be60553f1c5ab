"""Restorer: restores layer metadata from the previous image and the cache, and layer contents
from the cache.

Usage: restorer [flags]
"""

from __future__ import annotations

from lifecycle.cli._command import Context
from lifecycle.priv import Privileges

FLAGS = ("analyzed", "build-image", "cache-dir", "cache-image", "daemon", "gid", "group", "insecure-registry", "layers",
         "oci", "oci-dir", "run", "skip-layers", "uid")
ARGS = (0, 0)
USAGE_ARGS = "[args]..."
# What root does before the drop to the CNB user (spec/trust-model.md).
PRIVILEGES = Privileges(chown=("layers", "cache-dir"), keychain=True)


def run(ctx: Context) -> None:
    """Read group.toml and analyzed.toml, open the cache, restore."""
    from lifecycle.phases.restorer import restore_or_fail
    from lifecycle.platform.resolve import restore_cache, restore_inputs

    s = ctx.settings
    inputs = restore_inputs(s, ctx.api, ctx.logger)
    restore_or_fail(inputs, restore_cache(s, ctx.logger, ctx.keychain), ctx.logger)
