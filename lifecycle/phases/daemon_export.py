"""Daemon export that is right by construction: where the bytes of the layers ``docker load``
needs come from.

``docker load`` skips a layer file when the daemon already holds that layer's *chain* (the layer
on top of exactly the layers below it, identified by the chain ID); every other layer must be in
the archive. The daemon store's staging says which layers those are
(:meth:`~lifecycle.image.store.Staging.lacking`: a chain the run image or the previous image in the
daemon has is known; a layer the exporter just built has its blob in the staging layout); the other
stores lack none. Each lacking layer's bytes are taken from, in this order:

1. the launch cache (``-launch-cache``, upstream's volume format: ``committed/<diffID>.tar``);
2. the previous image in the store (in the daemon: one streamed ``docker save``, keeping only the
   needed layers, :mod:`lifecycle.image.daemon_layers`);
3. the layers directory: the layer is rebuilt from its source (a buildpack's layer directory, the
   app, the launcher, ``<layers>/config``), reproducibly, so it has the recorded diffID (checked).

Only the needed layers go into the archive; never the whole image. After the load, the launch cache
is rewritten with this image's layers above the run image (as upstream's caching image does).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from lifecycle.errors import ImageError
from lifecycle.image import model as m
from lifecycle.image.layout import Layout
from lifecycle.image.store import ImageStore, StoredImage
from lifecycle.layers.tar import Entry, HashingSink, write_tar

CHUNK = 1 << 20
SOURCES = ("launch cache", "previous image", "layers directory")


@dataclass(frozen=True)
class Layer:
    """One layer of the app image as the daemon export sees it."""

    diff_id: str
    digest: str  # the blob the archive names (a daemon image's layers are named by diffID)
    key: str  # for messages: "<bp>:<layer>", "buildpacksio/lifecycle:launcher", ...
    rebuild: Callable[[], Iterable[Entry]] | None = None  # the entries of its source, when there is one


@dataclass(frozen=True)
class Filled:
    """A layer whose bytes were put into the staging layout, and from where."""

    key: str
    diff_id: str
    source: str


def fill(staging: Layout, needed: Sequence[Layer], *, launch_cache: Path | None, store: ImageStore,
         previous: StoredImage | None, scratch_parent: Path) -> list[Filled]:
    """Put the bytes of each needed layer into ``staging`` as an uncompressed tar blob named by its
    diffID, from the first source that has them (see the module doc). Raises ImageError naming the
    layers no source has."""
    filled: list[Filled] = []
    left = list(needed)
    if launch_cache is not None and left:
        still: list[Layer] = []
        for layer in left:
            path = launch_cache / "committed" / f"{layer.diff_id}.tar"
            if path.is_file() and _copy_verified(path, staging, layer):
                filled.append(Filled(layer.key, layer.diff_id, "launch cache"))
            else:
                still.append(layer)
        left = still
    if previous is not None and left:
        wanted = {layer.diff_id for layer in left if layer.diff_id in previous.diff_ids}
        if wanted:
            scratch = Path(tempfile.mkdtemp(prefix=".daemon-layers-", dir=scratch_parent))
            try:
                found = store.layer_files(previous, wanted, scratch)
                still = []
                for layer in left:
                    saved = found.get(layer.diff_id)
                    if saved is not None and _copy_verified(saved, staging, layer, move=True):
                        filled.append(Filled(layer.key, layer.diff_id, "previous image"))
                    else:
                        still.append(layer)
                left = still
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
    still = []
    for layer in left:
        if layer.rebuild is not None and _rebuild(staging, layer):
            filled.append(Filled(layer.key, layer.diff_id, "layers directory"))
        else:
            still.append(layer)
    if still:
        names = ", ".join(f"'{layer.key}' ({layer.diff_id})" for layer in still)
        raise ImageError(f"the Docker daemon does not hold the layers below {names} in this order, so it needs "
                         "their bytes, and no source has them: not in the launch cache"
                         f"{'' if launch_cache else ' (no -launch-cache given)'}, not in the previous image "
                         "in the daemon, and not rebuildable from the layers directory")
    return filled


def _copy_verified(path: Path, staging: Layout, layer: Layer, *, move: bool = False) -> bool:
    """Copy (or move) an uncompressed layer tar into ``staging``; False when its sha256 is wrong."""
    with staging.blob_writer() as writer:
        with open(path, "rb") as src:
            for chunk in iter(lambda: src.read(CHUNK), b""):
                writer.write(chunk)
        if writer.digest != layer.diff_id:
            return False
        writer.commit(m.OCI_LAYER)
    if move:
        with contextlib.suppress(OSError):
            path.unlink()
    return True


def _rebuild(staging: Layout, layer: Layer) -> bool:
    assert layer.rebuild is not None
    with staging.blob_writer() as writer:
        sink = HashingSink(writer)
        write_tar(layer.rebuild(), sink)
        if sink.digest != layer.diff_id:
            return False
        writer.commit(m.OCI_LAYER)
    return True


def update_launch_cache(launch_cache: Path, layers: Sequence[Layer], staging: Layout, logger: Any) -> None:
    """Make the launch cache hold exactly ``layers`` (the app image's layers above the run image):
    committed ones are kept, the others are taken from the staging layout (gunzipped when the
    exporter built them). A layer whose bytes are nowhere here is left out (as upstream's caching
    image leaves out reused layers it never saw). Failures are warnings."""
    from lifecycle.cache import CacheError
    from lifecycle.cache.metadata import CacheMetadata
    from lifecycle.cache.volume import VolumeCache

    try:
        cache = VolumeCache(launch_cache, logger)
        for layer in layers:
            committed = launch_cache / "committed" / f"{layer.diff_id}.tar"
            if committed.is_file():
                try:
                    cache.reuse_layer(layer.diff_id)
                    continue
                except CacheError:
                    pass
            with _open_uncompressed(staging, layer) as stream:
                if stream is not None:
                    cache.add_layer(stream, layer.diff_id)
        cache.set_metadata(CacheMetadata())
        cache.commit()
    except (CacheError, OSError, ImageError) as exc:
        logger.warning(f"Failed to update the launch cache: {exc}")


@contextlib.contextmanager
def _open_uncompressed(staging: Layout, layer: Layer) -> Any:
    import gzip

    found: m.Descriptor | None = None
    for desc in _blob_descriptors(staging, layer):
        found = desc
        break
    if found is None:
        yield None
        return
    with staging.open_blob(found) as raw:
        stream: IO[bytes] = gzip.GzipFile(fileobj=raw) if found.mediaType.endswith("gzip") else raw  # type: ignore[assignment]
        yield stream


def _blob_descriptors(staging: Layout, layer: Layer) -> list[m.Descriptor]:
    """The staging blob holding ``layer``: its manifest blob, else a tar named by its diffID."""
    out: list[m.Descriptor] = []
    if staging.has_blob(layer.digest):
        media = m.OCI_LAYER if layer.digest == layer.diff_id else m.OCI_LAYER_GZIP
        size = staging.blob_path(layer.digest).stat().st_size
        out.append(m.Descriptor(mediaType=media, digest=layer.digest, size=size))
    elif staging.has_blob(layer.diff_id):
        size = staging.blob_path(layer.diff_id).stat().st_size
        out.append(m.Descriptor(mediaType=m.OCI_LAYER, digest=layer.diff_id, size=size))
    return out
