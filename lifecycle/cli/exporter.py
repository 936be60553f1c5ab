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
PRIVILEGES = Privileges(chown=("cache-dir", "launch-cache"), keychain=True)


def run(ctx: Context) -> None:
    """Resolve inputs, export the image and the cache (concurrently with -parallel), write report.toml."""
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    from lifecycle import __version__
    from lifecycle.cache import CacheError, from_settings
    from lifecycle.errors import ExitCode, LifecycleError
    from lifecycle.files import group as group_file
    from lifecycle.phases.cache_export import export_cache
    from lifecycle.phases.exporter import export
    from lifecycle.phases.save import write_report
    from lifecycle.phases.sbom import write_lifecycle_sboms
    from lifecycle.platform.resolve import export_inputs, image_store

    s = ctx.settings
    store = image_store(s, ctx.keychain)
    inputs = export_inputs(s, str(ctx.api), store, ctx.logger, output=ctx.args[0], tags=tuple(ctx.args[1:]))
    try:
        write_lifecycle_sboms(inputs.layers, __version__)
    except OSError as exc:
        raise LifecycleError(f"failed to export: failed to copy buildpacksio SBOMs: {exc.strerror or exc}: "
                             f"{exc.filename or ''}", ExitCode.EXPORT) from None
    try:
        cache = from_settings(s, ctx.logger, ctx.keychain)
    except CacheError as exc:
        ctx.logger.warning(f"Failed to export cache: {exc}")
        cache = None
    if s["launch-cache"] and not s["daemon"] and ctx.program != "creator":  # the analyzer step said so
        ctx.logger.warning("Ignoring -launch-cache, only intended for use with -daemon")
    if cache is None:
        if ctx.program != "creator":  # the creator's restore step already said so
            ctx.logger.warning("No cached data will be used, no cache specified.")
        if s["parallel"]:
            ctx.logger.warning("Parallel export has been enabled, but it has not taken effect because no cache "
                               "has been specified.")
        write_report(Path(s["report"]), export(inputs, store, ctx.logger))
        return
    group = group_file.read(Path(s["group"])).group if Path(s["group"]).exists() else []

    def write_cache() -> None:
        assert cache is not None
        export_cache(cache, Path(s["layers"]), group, int(s["uid"]), int(s["gid"]), ctx.logger)

    if s["parallel"]:
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(write_cache)
            try:
                result = export(inputs, store, ctx.logger)
            finally:
                pending.result()
    else:
        result = export(inputs, store, ctx.logger)
        write_cache()
    write_report(Path(s["report"]), result)
