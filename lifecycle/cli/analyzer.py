"""Analyzer: reads the run image and the previous image, writes analyzed.toml.

Usage: analyzer [flags] <image>
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lifecycle.cli._command import Context
from lifecycle.errors import ExitCode, LifecycleError
from lifecycle.priv import Privileges

if TYPE_CHECKING:
    from lifecycle.image.access import Store
    from lifecycle.phases.analyzer import AnalyzeInputs

FLAGS = ("analyzed", "cache-image", "daemon", "gid", "layers", "launch-cache", "oci", "oci-dir",
         "previous-image", "run", "run-image", "skip-layers", "tag", "uid", "insecure-registry")
ARGS = (1, 1)
USAGE_ARGS = "<image>"
# What root does before the drop to the CNB user (spec/trust-model.md).
PRIVILEGES = Privileges(chown=("layers", "launch-cache"), keychain=True)


def run(ctx: Context) -> None:
    """Resolve inputs, check registry access, analyze, write analyzed.toml."""
    from lifecycle.cache import cache_image_in_layout, check_cache_image
    from lifecycle.cli._inputs import check_refs, check_same_registry, run_image, store_for
    from lifecycle.files import analyzed as analyzed_file
    from lifecycle.phases.analyzer import AnalyzeInputs, analyze

    s = ctx.settings
    output = ctx.args[0]
    tags = tuple(s["tag"])
    store = store_for(ctx)
    check_refs(output, *tags, str(s["previous-image"]))
    check_same_registry(output, tags, oci=bool(s["oci"]))
    if s["launch-cache"] and not s["daemon"]:
        ctx.logger.warning("Ignoring -launch-cache, only intended for use with -daemon")
    check_cache_image(s)
    cache_image = str(s["cache-image"] or "")
    registry_cache = cache_image if cache_image and cache_image_in_layout(cache_image) is None else ""
    check_refs(registry_cache)
    inputs = AnalyzeInputs(output_image=output, run_image=run_image(ctx, store, output, oci=bool(s["oci"])),
                           previous_image=str(s["previous-image"] or output),
                           skip_layers=bool(s["skip-layers"]), layers=Path(s["layers"]))
    check_refs(inputs.run_image)
    _ensure_registry_access(ctx, store, inputs, tags, registry_cache)
    result = analyze(inputs, store, ctx.logger)
    try:
        analyzed_file.write(s["analyzed"], result)
    except OSError as exc:
        raise LifecycleError(f"failed to write analyzed: {exc.strerror or exc}: {s['analyzed']}",
                             ExitCode.ANALYZE) from None


def _ensure_registry_access(ctx: Context, store: Store, inputs: AnalyzeInputs, tags: tuple[str, ...],
                            registry_cache: str) -> None:
    """Upstream's checks before any build work: in registry mode the run and previous images must be
    readable and the output image and every tag writable; a registry cache image must be writable in
    every mode."""
    from lifecycle.cli._inputs import registry_store_for
    from lifecycle.image.access import ensure_registry_access
    from lifecycle.image.registry import RegistryStore

    if isinstance(store, RegistryStore):
        ensure_registry_access(store, read=[inputs.previous_image, inputs.run_image],
                               write=[registry_cache, inputs.output_image, *tags])
    elif registry_cache:
        ensure_registry_access(registry_store_for(ctx), write=[registry_cache])
