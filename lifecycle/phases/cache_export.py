"""Cache export: the exporter's (and creator's) second job, after the app image.

Every buildpack layer with ``cache = true`` and a directory is tarred reproducibly; when its diffID
equals the sha recorded in the previous cache metadata and the cached copy verifies, the cached
copy is reused (``Reusing cache layer '<bp>:<name>'``), otherwise the new tar is added
(``Adding cache layer '<bp>:<name>'``). ``<layers>/sbom/cache`` becomes the cache's SBOM layer.
Then the metadata is written and the cache committed. Nothing here fails the phase: any error is
``Warning: Failed to export cache: <err>`` (upstream) and the previous cache stays committed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lifecycle.buildpack.layers_dir import GroupMember, layer_names
from lifecycle.cache import Cache, CacheError, CacheReadError
from lifecycle.cache.metadata import BuildpackLayers, CacheMetadata, LayerMetadata
from lifecycle.errors import LifecycleError
from lifecycle.files.group import escape_id
from lifecycle.files.layer import read_layer_toml
from lifecycle.layers.tar import write_layer_tar

SBOM_CACHE_ID = "buildpacksio/lifecycle:cache.sbom"


def export_cache(cache: Cache, layers_dir: Path, group_entries: Sequence[GroupMember], uid: int, gid: int,
                 logger: Any) -> None:
    """Write the cache; failures are logged as a warning, never raised."""
    started = time.monotonic()
    try:
        _export(cache, Path(layers_dir), group_entries, uid, gid, logger)
    except (CacheError, LifecycleError, OSError) as exc:
        logger.warning(f"Failed to export cache: {exc}")
        return
    logger.debug("Cache export finished", seconds=round(time.monotonic() - started, 3))


def _export(cache: Cache, layers_dir: Path, group_entries: Sequence[GroupMember], uid: int, gid: int,
            logger: Any) -> None:
    if not cache.exists():
        logger.info("Layer cache not found")
    previous = cache.metadata()
    meta = CacheMetadata()
    for bp in group_entries:
        bp_dir = layers_dir / escape_id(bp.id)
        entry = BuildpackLayers(key=bp.id, version=bp.version)
        prev_layers = previous.for_buildpack(bp.id).layers
        for name in layer_names(bp_dir):
            key = f"{bp.id}:{name}"
            try:
                toml = read_layer_toml(bp_dir / f"{name}.toml")
            except LifecycleError as exc:
                logger.warning(f"Failed to cache layer '{key}' because of error reading metadata: {exc}")
                continue
            if not toml.cache:
                continue
            layer_dir = bp_dir / name
            if not layer_dir.is_dir():
                logger.warning(f"Failed to cache layer '{key}': layer '{key}' is cache=true but has no "
                               "contents")
                continue
            prev = prev_layers.get(name)
            try:
                sha = _add_or_reuse(cache, key, layer_dir, prev.sha if prev else "", uid, gid, logger)
            except (CacheError, OSError) as exc:
                logger.warning(f"Failed to cache layer '{key}': {exc}")
                continue
            entry.layers[name] = LayerMetadata(sha=sha, data=toml.metadata or None, build=toml.build,
                                               launch=toml.launch, cache=True)
        meta.buildpacks.append(entry)
    sbom_dir = layers_dir / "sbom" / "cache"
    if sbom_dir.is_dir():
        meta.sbom.sha = _add_or_reuse(cache, SBOM_CACHE_ID, sbom_dir, previous.sbom.sha, uid, gid, logger)
    cache.set_metadata(meta)
    cache.commit()


def _add_or_reuse(cache: Cache, key: str, layer_dir: Path, previous_sha: str, uid: int, gid: int,
                  logger: Any) -> str:
    """Reuse needs no bytes written: hash the tar first (to /dev/null); only a changed (or unusable)
    layer is written to a temp file in the cache's scratch directory and staged from there."""
    start = time.monotonic()
    if previous_sha:
        with open(os.devnull, "wb") as null:
            diff_id = write_layer_tar(layer_dir, null, uid=uid, gid=gid)
        if diff_id == previous_sha:
            try:
                cache.reuse_layer(diff_id)
            except CacheReadError as exc:
                logger.warning(f"Skipping reuse for layer {key}: {exc}")
            else:
                logger.info(f"Reusing cache layer '{key}'", seconds=round(time.monotonic() - start, 3))
                logger.debug(f"Layer '{key}' SHA: {diff_id}")
                return diff_id
    fd, name = tempfile.mkstemp(prefix=".tmp-layer-", suffix=".tar", dir=cache.scratch_dir())
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            diff_id = write_layer_tar(layer_dir, out, uid=uid, gid=gid)
        size = tmp.stat().st_size
        cache.add_layer(tmp, diff_id)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    logger.info(f"Adding cache layer '{key}'", size=size, seconds=round(time.monotonic() - start, 3))
    logger.debug(f"Layer '{key}' SHA: {diff_id}")
    return diff_id
