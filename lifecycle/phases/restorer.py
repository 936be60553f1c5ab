"""The restorer: bring back layer metadata and cached layer contents before the build.

Sources: ``[metadata]`` of analyzed.toml (the previous app image's label, TOML shape: per-layer
``sha``/``launch``/``build``/``cache``/``metadata``, per-buildpack ``store``) and the cache
metadata (JSON shape, ``data``). Rules (upstream's metadata restorer, spec restoration matrix):

- ``store.toml`` of every group buildpack is written from the app image, also with skip-layers;
- app-image layers: only ``launch = true``; not ``build = true, cache = false``; and when
  ``cache = true`` only if the cache also lists the layer with ``cache = true``;
- cache layers: only ``cache = true``; a ``launch = true`` one only when the app image does not
  list it and the Platform API is at least 0.14;
- contents come from the cache for every restored layer the cache lists with ``cache = true``,
  when the shas agree (else ``Removing "<bp>:<name>", wrong sha``).

Contents are extracted with :func:`lifecycle.archive.extract_layer` into a temporary directory
under ``<layers>/<bp>`` while the stream is hashed; only when the hash equals the diffID is the
directory renamed into place and the ``<layer>.toml`` written (only ``[metadata]``, as upstream).
A missing blob, a hash mismatch, a truncated or hostile tar is ``Warning: Skipping restore for
layer <bp>:<name>: <why>`` and neither contents nor metadata are restored, so the buildpack
rebuilds the layer.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifecycle.api import NEWEST_PLATFORM, ApiVersion
from lifecycle.archive import ArchiveError, HashingReader, extract_layer, remove_tree
from lifecycle.buildpack.layers_dir import GroupMember, layer_names
from lifecycle.cache import Cache, CacheError, CacheReadError
from lifecycle.cache.metadata import CacheMetadata, LayerMetadata
from lifecycle.errors import ExitCode, LifecycleError
from lifecycle.files import _toml
from lifecycle.files.group import escape_id
from lifecycle.files.layer import write_layer_metadata

MAX_WORKERS = 4


@dataclass(frozen=True)
class RestoreInputs:
    """Resolved inputs of the restorer (the creator builds one too)."""

    layers_dir: Path
    group: Sequence[GroupMember]
    layers_metadata: dict[str, Any] = field(default_factory=dict)  # analyzed.toml [metadata]
    skip_layers: bool = False
    uid: int = 0
    gid: int = 0
    platform_api: ApiVersion = NEWEST_PLATFORM


@dataclass
class RestoreResult:
    """What happened, by ``<bp>:<name>`` (for tests and the creator's logs)."""

    metadata: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Planned:
    name: str
    sha: str
    data: Any
    source: str  # "app image" | "cache"
    with_contents: bool


def _app_buildpacks(layers_metadata: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for bp in layers_metadata.get("buildpacks") or []:
        if isinstance(bp, dict) and isinstance(bp.get("key"), str):
            out.setdefault(bp["key"], bp)
    return out


def valid_layer_name(name: str) -> bool:
    """Layer names from metadata become paths: one plain path component only."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\0" not in name \
        and not name.startswith(".restore-")


def plan_buildpack(app_layers: dict[str, Any], cached: dict[str, LayerMetadata],
                   platform_api: ApiVersion) -> list[_Planned]:
    """Which layers of one buildpack get metadata (and contents), per the restoration matrix.

    Names that are not a single plain path component are never planned."""
    planned: dict[str, _Planned] = {}
    app_layers = {k: v for k, v in app_layers.items() if valid_layer_name(k)}
    cached = {k: v for k, v in cached.items() if valid_layer_name(k)}
    for name in sorted(app_layers):
        layer = app_layers[name]
        if not isinstance(layer, dict) or not layer.get("launch"):
            continue
        if layer.get("build") and not layer.get("cache"):
            continue
        if layer.get("cache"):
            in_cache = cached.get(name)
            if in_cache is None or not in_cache.cache:
                continue
        planned[name] = _Planned(name, str(layer.get("sha") or ""), layer.get("metadata"), "app image", False)
    for name in sorted(cached):
        lm = cached[name]
        if not lm.cache:
            continue
        if lm.launch and (name in app_layers or platform_api < ApiVersion(0, 14)):
            continue
        planned[name] = _Planned(name, lm.sha, lm.data, "cache", False)
    out: list[_Planned] = []
    for name in sorted(planned):
        p = planned[name]
        in_cache = cached.get(name)
        with_contents = in_cache is not None and in_cache.cache
        out.append(_Planned(p.name, p.sha, p.data, p.source, with_contents))
    return out


class _Restorer:
    def __init__(self, inputs: RestoreInputs, cache: Cache | None, logger: Any) -> None:
        self.inputs = inputs
        self.layers = Path(inputs.layers_dir)
        self.cache = cache
        self.logger = logger
        self.owner = (inputs.uid, inputs.gid) if os.geteuid() == 0 else None
        self.result = RestoreResult()

    def _chown(self, path: Path) -> None:
        if self.owner is not None:
            os.lchown(path, *self.owner)

    def _bp_dir(self, bp: GroupMember) -> Path:
        path = self.layers / escape_id(bp.id)
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            self._chown(path)
        return path

    def run(self) -> RestoreResult:
        cache_meta = self._cache_metadata()
        app = _app_buildpacks(self.inputs.layers_metadata)
        self._restore_store(app)
        if self.inputs.skip_layers:
            self.logger.info("Skipping buildpack layer analysis")
            return self.result
        for bp in self.inputs.group:
            self._restore_buildpack(bp, app.get(bp.id) or {}, cache_meta)
        if self.cache is not None and cache_meta.sbom.sha:
            self._restore_sbom(cache_meta.sbom.sha)
        self._sbom_to_layers()
        return self.result

    def _cache_metadata(self) -> CacheMetadata:
        if self.cache is None:
            self.logger.debug("Usable cache not provided, using empty cache metadata")
            return CacheMetadata()
        if not self.cache.exists():
            self.logger.info("Layer cache not found")
        return self.cache.metadata()

    def _restore_store(self, app: dict[str, dict[str, Any]]) -> None:
        for bp in self.inputs.group:
            store = (app.get(bp.id) or {}).get("store")
            if isinstance(store, dict):
                path = self._bp_dir(bp) / "store.toml"
                _toml.write(path, store)
                self._chown(path)

    def _write_metadata(self, bp_dir: Path, name: str, data: Any) -> None:
        path = bp_dir / f"{name}.toml"
        write_layer_metadata(path, data if isinstance(data, dict) else {})
        self._chown(path)

    def _remove_layer(self, bp_dir: Path, name: str) -> None:
        remove_tree(bp_dir / name)
        for suffix in (".sha", ".toml"):
            path = bp_dir / f"{name}{suffix}"
            if path.is_file() or path.is_symlink():
                path.unlink()

    def _restore_buildpack(self, bp: GroupMember, app_bp: dict[str, Any], cache_meta: CacheMetadata) -> None:
        app_layers = app_bp.get("layers") or {}
        if not isinstance(app_layers, dict):
            app_layers = {}
        cached = cache_meta.for_buildpack(bp.id).layers
        for name in sorted({*app_layers, *cached}):
            if not valid_layer_name(name):
                self.logger.warning(f"Ignoring layer '{bp.id}:{name}' in metadata: invalid layer name")
        plan = plan_buildpack(app_layers, cached, self.inputs.platform_api)
        bp_dir = self.layers / escape_id(bp.id)
        if bp_dir.is_dir():
            for stale in bp_dir.glob(".restore-*"):  # left by a killed restorer
                remove_tree(stale)
        planned_names = {p.name for p in plan}
        for name in layer_names(bp_dir):
            in_cache = cached.get(name)
            if name not in planned_names and in_cache is not None and in_cache.cache:
                self.logger.info(f'Removing "{bp.id}:{name}", wrong sha')
                self._remove_layer(bp_dir, name)
                self.result.removed.append(f"{bp.id}:{name}")
        with_contents: list[_Planned] = []
        for p in plan:
            key = f"{bp.id}:{p.name}"
            if not p.with_contents:
                self.logger.info(f'Restoring metadata for "{key}" from {p.source}')
                self._write_metadata(self._bp_dir(bp), p.name, p.data)
                self.result.metadata.append(key)
                continue
            if p.sha != cached[p.name].sha:
                self.logger.info(f'Removing "{key}", wrong sha')
                self.logger.debug(f'Layer sha: "{p.sha}", cache sha: "{cached[p.name].sha}"')
                if bp_dir.is_dir():
                    self._remove_layer(bp_dir, p.name)
                self.result.removed.append(key)
                continue
            with_contents.append(p)
        if not with_contents:
            return
        bp_dir = self._bp_dir(bp)
        for p in with_contents:
            self.logger.info(f'Restoring data for "{bp.id}:{p.name}" from cache')
        workers = min(MAX_WORKERS, len(with_contents))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(self._restore_contents, bp_dir / p.name, p.sha) for p in with_contents]
            outcomes = [f.result() for f in futures]
        for p, error in zip(with_contents, outcomes, strict=True):
            key = f"{bp.id}:{p.name}"
            if error is not None:
                self.logger.warning(f"Skipping restore for layer {key}: {error}")
                self._remove_layer(bp_dir, p.name)
                self.result.skipped.append(key)
                continue
            self.logger.info(f'Restoring metadata for "{key}" from {p.source}')
            self._write_metadata(bp_dir, p.name, p.data)
            self.result.metadata.append(key)
            self.result.data.append(key)

    def _restore_contents(self, target: Path, diff_id: str) -> str | None:
        """Extract the cached layer ``diff_id`` to ``target``, verified; the error text or None."""
        assert self.cache is not None
        start = time.monotonic()
        tmp = Path(tempfile.mkdtemp(prefix=f".restore-{target.name}-", dir=target.parent))
        try:
            with self.cache.retrieve_layer(diff_id) as stream:
                reader = HashingReader(stream)
                refused: ArchiveError | None = None
                try:
                    extract_layer(reader, tmp, str(target), owner=self.owner, link_root=str(self.layers))
                except ArchiveError as exc:
                    refused = exc
                reader.drain()
            if reader.digest != diff_id:
                raise CacheReadError(f"expected layer contents to have SHA '{diff_id}'; found "
                                     f"'{reader.digest}'")
            if refused is not None:
                raise refused
            if os.path.lexists(target):
                remove_tree(target)
            os.rename(tmp, target)
        except (CacheError, ArchiveError, OSError) as exc:
            remove_tree(tmp)
            return str(exc) if not isinstance(exc, OSError) else f"{exc.strerror or exc}"
        except BaseException:
            remove_tree(tmp)
            raise
        self.logger.debug(f"Restored {target.name}", size=reader.size,
                          seconds=round(time.monotonic() - start, 3))
        return None

    # ---- SBOM (upstream's SBOM restorer) -------------------------------------------------------
    def _restore_sbom(self, diff_id: str) -> None:
        self.logger.info("Restoring data for SBOM from cache")
        target = self.layers / "sbom" / "cache"
        target.parent.mkdir(parents=True, exist_ok=True)
        error = self._restore_contents(target, diff_id)
        if error is not None:
            self.logger.warning(f"Skipping restore for SBOM: {error}")

    def _sbom_to_layers(self) -> None:
        sbom = self.layers / "sbom"
        if not sbom.is_dir():
            return
        group_dirs = {escape_id(bp.id) for bp in self.inputs.group}
        for kind in ("cache", "launch"):
            base = sbom / kind
            if not base.is_dir():
                continue
            for bp_dir in sorted(base.iterdir()):
                dest = self.layers / bp_dir.name
                if bp_dir.name not in group_dirs or not dest.is_dir() or not bp_dir.is_dir():
                    continue
                for layer in sorted(p for p in bp_dir.iterdir() if p.is_dir() and not p.is_symlink()):
                    for f in sorted(layer.iterdir()):
                        if f.name.startswith("sbom") and f.name.endswith("json") and f.is_file() \
                                and not f.is_symlink():
                            out = dest / f"{layer.name}.{f.name}"
                            shutil.copyfile(f, out)
                            self._chown(out)
        remove_tree(sbom)


def restore(inputs: RestoreInputs, cache: Cache | None, logger: Any) -> RestoreResult:
    """Restore store.toml, layer metadata and cached layer contents into ``inputs.layers_dir``.

    Bad cached bytes are warnings; only I/O failures in the layers directory raise (OSError)."""
    return _Restorer(inputs, cache, logger).run()


def restore_or_fail(inputs: RestoreInputs, cache: Cache | None, logger: Any) -> RestoreResult:
    """:func:`restore`, its I/O and cache failures as exit 22."""
    try:
        return restore(inputs, cache, logger)
    except (OSError, CacheError) as exc:
        raise LifecycleError(f"failed to restore: {exc}", ExitCode.RESTORE) from None
