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
    from pathlib import Path

    from lifecycle import cache as cache_mod
    from lifecycle.errors import ExitCode, LifecycleError
    from lifecycle.files import analyzed as analyzed_file
    from lifecycle.files import group as group_file
    from lifecycle.phases.restorer import RestoreInputs, restore

    s = ctx.settings
    if s["build-image"]:
        # pack passes it for builders with image extensions; refuse before touching anything.
        raise LifecycleError(f"image extensions are not supported: -build-image {s['build-image']} asks to "
                             "extend the build image", ExitCode.INVALID_ARGS)
    group = group_file.read(Path(s["group"]))
    metadata: dict[str, object] = {}
    try:
        analyzed = analyzed_file.read(Path(s["analyzed"]))
    except (ValueError, LifecycleError) as exc:
        ctx.logger.warning(f"Not using analyzed data, usable file not found: {exc}")
        analyzed = None
    else:
        if analyzed is None:
            ctx.logger.warning(f"Not using analyzed data, usable file not found: open {s['analyzed']}: "
                               "no such file or directory")
    if analyzed is not None:
        metadata = dict(analyzed.metadata)
    if not s["cache-dir"] and not s["cache-image"]:
        ctx.logger.warning("No cached data will be used, no cache specified.")
    try:
        cache = cache_mod.from_settings(s, ctx.logger, ctx.keychain)
    except cache_mod.CacheError as exc:
        raise LifecycleError(str(exc), ExitCode.RESTORE) from None
    inputs = RestoreInputs(layers_dir=Path(s["layers"]), group=tuple(group.group), layers_metadata=metadata,
                           skip_layers=bool(s["skip-layers"]), uid=int(s["uid"]), gid=int(s["gid"]),
                           platform_api=ctx.api)
    try:
        restore(inputs, cache, ctx.logger)
    except (OSError, cache_mod.CacheError) as exc:
        raise LifecycleError(f"failed to restore: {exc}", ExitCode.RESTORE) from None
