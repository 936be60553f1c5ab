"""The exporter phase as the platform runs it (the exporter command and the creator's last step):
the lifecycle's own SBOM files, then the app image (:mod:`lifecycle.phases.exporter`) and the cache
(:mod:`lifecycle.phases.cache_export`), side by side with ``-parallel``, then ``report.toml``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifecycle.errors import ExitCode, LifecycleError
from lifecycle.phases.exporter import ExportInputs, export
from lifecycle.phases.save import write_report

if TYPE_CHECKING:
    from lifecycle.cache import Cache
    from lifecycle.image.store import ImageStore


def write_own_sboms(layers: Path) -> None:
    """The lifecycle's and the launcher's SBOM files under ``<layers>/sbom`` (exit 62 on failure)."""
    from lifecycle import __version__
    from lifecycle.phases.sbom import write_lifecycle_sboms

    try:
        write_lifecycle_sboms(layers, __version__)
    except OSError as exc:
        raise LifecycleError(f"failed to export: failed to copy buildpacksio SBOMs: {exc.strerror or exc}: "
                             f"{exc.filename or ''}", ExitCode.EXPORT) from None


def export_all(inputs: ExportInputs, store: ImageStore, cache: Cache | None, *, parallel: bool, report: Path,
               logger: Any) -> None:
    """Export the image and, with a cache, the cache (concurrently with ``parallel``; a cache
    failure is a warning); then write ``report``."""
    if cache is None:
        write_report(report, export(inputs, store, logger))
        return
    from lifecycle.files import group as group_file  # the cache's modules only when there is one
    from lifecycle.phases.cache_export import export_cache

    entries = group_file.read(inputs.group).group if inputs.group.exists() else []

    def write_cache() -> None:
        assert cache is not None
        export_cache(cache, inputs.layers, entries, inputs.uid, inputs.gid, logger)

    if parallel:
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(write_cache)
            try:
                result = export(inputs, store, logger)
            finally:
                pending.result()
    else:
        result = export(inputs, store, logger)
        write_cache()
    write_report(report, result)
