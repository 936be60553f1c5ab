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
PRIVILEGES = Privileges(chown=("layers", "launch-cache"), keychain=True, daemon=True)


def run(ctx: Context) -> None:
    """Resolve inputs, check registry access, analyze, write analyzed.toml."""
    from lifecycle.cache import cache_image_in_layout, check_cache_image
    from lifecycle.files import analyzed as analyzed_file
    from lifecycle.image.access import ensure_registry_access, ensure_store_access
    from lifecycle.image.store import registry_store
    from lifecycle.phases.analyzer import analyze
    from lifecycle.platform.resolve import analyze_inputs, check_refs, image_store

    s = ctx.settings
    store = image_store(s, ctx.keychain, ctx.daemon)
    if s["launch-cache"] and not s["daemon"]:
        ctx.logger.warning("Ignoring -launch-cache, only intended for use with -daemon")
    check_cache_image(s)
    cache_image = str(s["cache-image"] or "")
    registry_cache = cache_image if cache_image and cache_image_in_layout(cache_image) is None else ""
    check_refs(registry_cache)
    inputs = analyze_inputs(s, ctx.args[0], store)
    # Upstream's checks before any build work: in registry mode the run and previous images must be
    # readable and the output image and every tag writable; a registry cache image writable in every mode.
    checked = ensure_store_access(store, read=[inputs.previous_image, inputs.run_image],
                                  write=[registry_cache, inputs.output_image, *s["tag"]])
    if registry_cache and not checked:
        ensure_registry_access(registry_store(tuple(s["insecure-registry"] or ()), s.environ, ctx.keychain,
                                              registry_timeout=int(s["registry-timeout"]),
                                              registry_deadline=int(s["registry-deadline"])),
                               write=[registry_cache])
    result = analyze(inputs, store, ctx.logger)
    try:
        analyzed_file.write(s["analyzed"], result)
    except OSError as exc:
        raise LifecycleError(f"failed to write analyzed: {exc.strerror or exc}: {s['analyzed']}",
                             ExitCode.ANALYZE) from None
