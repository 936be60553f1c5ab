"""The cache image (``-cache-image <ref>`` with ``-oci``): a cache kept as an image in an OCI layout.

The reference is resolved like every other image (``LayoutStore``); the cache is written to the
canonical directory ``store.output_path(ref)`` and tagged there with the reference's tag. Its
layers are the cached layer tars, gzip-compressed (``application/vnd.oci.image.layer.v1.tar+gzip``),
in the order they were staged; its config's ``rootfs.diff_ids`` names them and its label
``io.buildpacks.lifecycle.cache.metadata`` holds the metadata. Blobs go through the layout write
API (temp file, fsync, rename); ``index.json`` changes atomically under the layout lock. Unchanged
layers keep their blob (nothing is rewritten).

Two builds may share one cache image and commit at the same time (spec/cache-and-restore.md). Every
blob this cache stages, reused or added, is pinned: a hard link in this commit's pin directory
(``blobs/sha256/.tmp-pins-*``), made under the layout lock for a reused blob and verified there.
The commit then, in one critical section under the lock: puts back any staged blob a concurrent
commit pruned (from its pin), writes config and manifest, tags, and prunes: the previous cache
image's blobs, and any other digest-named blob, that nothing in ``index.json`` references and whose
inode has not changed for :data:`~lifecycle.image.layout.STALE_AFTER` seconds (a concurrent writer's
blobs are newer, or pinned). So a committed cache image never names a missing blob, and the cache
does not grow without bound.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import stat
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

import isal.igzip as igzip
import isal.igzip_lib as igzip_lib

from lifecycle.cache import CacheError, CacheReadError, check_diff_id
from lifecycle.cache.metadata import METADATA_LABEL, CacheMetadata, parse
from lifecycle.errors import ImageError, LifecycleError
from lifecycle.image import model as m
from lifecycle.image.draft import Draft, Part
from lifecycle.image.layout import PIN_PREFIX, STALE_AFTER, BlobWriter, Image, Layout, host_platform
from lifecycle.image.resolver import check_output
from lifecycle.image.store import LayoutStore

CHUNK = 1 << 20
CREATED = "1980-01-01T00:00:01Z"
EMPTY_TAR = bytes(1024)  # a tar archive with no entries: its two zero end blocks
EMPTY_TAR_DIFF_ID = "sha256:" + hashlib.sha256(EMPTY_TAR).hexdigest()
_GZIP_TYPES = {m.OCI_LAYER_GZIP, m.DOCKER_LAYER_GZIP, "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"}
_TAR_TYPES = {m.OCI_LAYER, "application/vnd.docker.image.rootfs.diff.tar"}
_ISAL_ERROR = cast(type[Exception], igzip_lib.IsalError)  # typed as an instance in isal's stubs
_READ_ERRORS = (ImageError, OSError, EOFError, zlib.error, _ISAL_ERROR)  # BadGzipFile is an OSError


class _CheckedStream:
    """A layer stream whose read errors (missing/corrupt blob, bad gzip) are CacheReadErrors."""

    def __init__(self, raw: Any, diff_id: str) -> None:
        self._raw = raw
        self._diff_id = diff_id

    def read(self, n: int = -1) -> bytes:
        try:
            data: bytes = self._raw.read(n)
        except _READ_ERRORS as exc:
            raise CacheReadError(f"failed to read cache layer with SHA '{self._diff_id}': {exc}") from None
        return data


class _RawReader(io.RawIOBase):
    """``readinto`` over a ``read``-only stream (igzip's reader needs it)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data: bytes = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _Sink:
    """File-like adapter so the gzip writer streams into a BlobWriter."""

    def __init__(self, writer: BlobWriter) -> None:
        self._writer = writer

    def write(self, data: bytes) -> int:
        return self._writer.write(bytes(data))

    def flush(self) -> None:
        pass


class CacheImageLabel:
    """What both cache images (layout, registry) read the same way: their name, whether the
    previous cache image exists, and its metadata label."""

    reference: str
    previous: Any
    logger: Any

    @property
    def name(self) -> str:
        """The cache image reference."""
        return self.reference

    def exists(self) -> bool:
        """Whether the cache image was found."""
        return self.previous is not None

    def metadata(self) -> CacheMetadata:
        """The label of the previous cache image; empty (with a warning) when unreadable."""
        if self.previous is None:
            return CacheMetadata()
        raw = self.previous.config.labels.get(METADATA_LABEL)
        if not raw:
            return CacheMetadata()
        try:
            return parse(raw)
        except ValueError as exc:
            self.logger.warning(f"Ignoring metadata of cache image '{self.reference}': {exc}; "
                                "using an empty cache")
            return CacheMetadata()


class ImageCache(CacheImageLabel):
    """A cache image in a layout (see the module doc)."""

    # Over 200 lines on purpose: the Cache protocol's verbs plus the pins that tie what is staged
    # to the commit's one critical section (put back, tag, prune); split, the pin rules would be
    # spread over classes that must agree on them.

    def __init__(self, store: LayoutStore, reference: str, logger: Any) -> None:
        self.reference = reference
        self.logger = logger
        try:
            location = store.resolver.canonical(reference)
        except LifecycleError as exc:
            raise CacheError(f"failed to create image cache: {exc.message}") from None
        if location.digest:
            raise CacheError(f"failed to create image cache: cache image '{reference}' must be a tag, "
                             "not a digest")
        try:
            check_output(reference, oci=True, oci_dir=str(store.resolver.root))
        except LifecycleError as exc:
            raise CacheError(f"failed to create image cache: {exc.message}") from None
        self.path = location.path
        self.tag = location.tag or "latest"
        self.layout = Layout(self.path)
        self.previous: Image | None = None
        try:
            self.previous = store.find(reference)
        except ImageError as exc:
            self.logger.warning(f"Ignoring cache image '{reference}': {exc}; using an empty cache")
        self._by_diff: dict[str, m.Descriptor] = {}
        if self.previous is not None:
            for diff_id, desc in zip(self.previous.diff_ids, self.previous.manifest.layers, strict=True):
                self._by_diff.setdefault(diff_id, desc)
        self._staged: dict[str, m.Descriptor] = {}
        self._metadata = CacheMetadata()
        self._committed = False
        self._scratch: Path | None = None
        self._pins: Path | None = None

    # ---- reading -----------------------------------------------------------------------------

    def _descriptor(self, diff_id: str) -> m.Descriptor:
        check_diff_id(diff_id)
        desc = self._by_diff.get(diff_id)
        if desc is None or self.previous is None:
            raise CacheReadError(f"failed to find cache layer with SHA '{diff_id}'")
        if not self.previous.layout.has_blob(desc.digest):
            raise CacheReadError(f"failed to find cache layer with SHA '{diff_id}' (blob {desc.digest} "
                                 "is missing)")
        return desc

    @contextlib.contextmanager
    def retrieve_layer(self, diff_id: str) -> Iterator[IO[bytes]]:
        """The layer's uncompressed tar; the compressed digest is checked at end of stream."""
        desc = self._descriptor(diff_id)
        assert self.previous is not None
        media = layer_media(desc, diff_id)
        try:
            with self.previous.layout.open_blob(desc) as blob, layer_stream(blob, media, diff_id) as stream:
                yield stream
        except ImageError as exc:
            raise CacheReadError(f"failed to read cache layer with SHA '{diff_id}': {exc}") from None

    def verify_layer(self, diff_id: str) -> None:
        """Re-hash the layer's blob against its digest and size."""
        desc = self._descriptor(diff_id)
        assert self.previous is not None
        try:
            f = self.previous.layout.open_blob_file(desc.digest)  # a regular file, never through a symlink
        except (ImageError, OSError) as exc:
            raise CacheReadError(f"failed to read cache layer with SHA '{diff_id}': {exc}") from None
        with f:
            _check_blob(f, desc, diff_id)

    def _pin_dir(self) -> Path:
        if self._pins is None:
            self.layout.init()
            self._pins = Path(tempfile.mkdtemp(prefix=PIN_PREFIX, dir=self.layout.path / "blobs" / "sha256"))
        return self._pins

    def _pin_path(self, digest: str) -> Path:
        return self._pin_dir() / digest.split(":", 1)[1]

    # ---- writing -----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._committed:
            raise CacheError("cache cannot be modified after commit")

    def scratch_dir(self) -> Path:
        """A private temporary directory (removed at commit)."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="cnb-cache-"))
        return self._scratch

    def add_layer(self, source: Path | IO[bytes], diff_id: str) -> None:
        """Compress the tar into a new blob, checking its uncompressed digest against ``diff_id``."""
        self._check_open()
        check_diff_id(diff_id)
        if diff_id in self._staged:
            return
        try:
            if isinstance(source, Path):
                with open(source, "rb") as f:
                    desc = self._compress(f, diff_id)
            else:
                desc = self._compress(source, diff_id)
        except OSError as exc:
            raise CacheError(f"caching layer ({diff_id}): {exc}") from None
        self._staged[diff_id] = desc

    def _compress(self, source: IO[bytes], diff_id: str) -> m.Descriptor:
        return compress_layer(self.layout, source, diff_id, pins=self._pin_dir())

    def reuse_layer(self, diff_id: str) -> None:
        """Keep the previous blob (linked in if the previous image lived elsewhere), pinned under
        the layout lock and verified through the pin (CacheReadError when gone or corrupt)."""
        self._check_open()
        desc = self._descriptor(diff_id)
        assert self.previous is not None
        if self.previous.path != self.path:
            self.verify_layer(diff_id)
            try:
                self.layout.add_blob_from(self.previous.layout.blob_path(desc.digest), desc)
            except ImageError as exc:
                raise CacheError(f"reusing layer ({diff_id}): {exc}") from None
        pin = self._pin_path(desc.digest)
        with self.layout.locked():  # a concurrent commit prunes under this lock: pinned, it stays
            try:
                st = os.stat(self.layout.blob_path(desc.digest), follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode):
                    raise CacheReadError(f"failed to read cache layer with SHA '{diff_id}': its blob is not "
                                         "a regular file")
                os.link(self.layout.blob_path(desc.digest), pin, follow_symlinks=False)
            except FileNotFoundError:
                raise CacheReadError(f"failed to find cache layer with SHA '{diff_id}' (blob {desc.digest} "
                                     "is missing)") from None
            except OSError as exc:
                raise CacheReadError(f"failed to read cache layer with SHA '{diff_id}': {exc}") from None
        try:
            with open(pin, "rb") as f:
                _check_blob(f, desc, diff_id)
        except CacheReadError:
            pin.unlink()
            raise
        self._staged[diff_id] = reused_descriptor(desc)

    def set_metadata(self, metadata: CacheMetadata) -> None:
        """Stage the label value."""
        self._check_open()
        self._metadata = metadata

    def commit(self) -> None:
        """In one critical section under the layout lock: put back staged blobs a concurrent
        commit pruned (from their pins), write config and manifest, tag, prune unreferenced blobs
        (see the module doc). Then drop the pins."""
        self._check_open()
        self._committed = True
        try:
            with self.layout.locked():
                self._restore_pinned()
                self._save()
                try:
                    self._prune()
                except (ImageError, OSError) as exc:
                    self.logger.debug(f"could not remove unused cache blobs: {exc}")
        except (ImageError, OSError) as exc:
            raise CacheError(f"saving cache image '{self.reference}': {exc}") from None
        finally:
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
            if self._pins is not None:
                shutil.rmtree(self._pins, ignore_errors=True)

    def _restore_pinned(self) -> None:
        for desc in self._staged.values():
            target = self.layout.blob_path(desc.digest)
            if os.path.lexists(target):
                continue
            pin = self._pin_path(desc.digest)
            try:
                os.link(pin, target, follow_symlinks=False)
            except FileNotFoundError:
                raise CacheError(f"blob {desc.digest} was removed from {self.path} while this cache was being "
                                 "written") from None
            self.logger.debug(f"restored cache blob {desc.digest} removed by a concurrent commit")

    def _save(self) -> None:
        manifest_desc = write_cache_image(self.layout, self._staged, self._metadata,
                                          annotations={m.REF_NAME: self.tag}, pins=self._pin_dir())
        self.layout.set_tag(manifest_desc, self.tag)

    def _prune(self) -> None:
        """Under the lock: remove the previous image's blobs and stale digest-named blobs that no
        manifest in ``index.json`` references (nothing at all when it holds nested indexes)."""
        keep: set[str] = set()
        for desc in self.layout.read_index().manifests:
            if desc.mediaType and desc.mediaType not in m.MANIFEST_TYPES:
                return  # nested indexes: do not guess what they reference
            keep.add(desc.digest)
            manifest = m.parse_blob(m.Manifest, self.layout.read_blob(desc), f"manifest {desc.digest}")
            keep.add(manifest.config.digest)
            keep.update(layer.digest for layer in manifest.layers)
        old: set[str] = set()
        if self.previous is not None and self.previous.path == self.path:
            old = {d.digest for d in self.previous.manifest.layers}
            old.add(self.previous.manifest.config.digest)
            old.add(self.previous.manifest_digest)
        limit = time.time() - STALE_AFTER
        blobs = self.path / "blobs" / "sha256"
        for name in sorted(os.listdir(blobs)):
            digest = f"sha256:{name}"
            if name.startswith(".") or digest in keep:
                continue
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(blobs / name, follow_symlinks=False)
                if digest in old or (stat.S_ISREG(st.st_mode) and st.st_ctime < limit):
                    os.unlink(blobs / name)


# ---- shared with the registry cache image (lifecycle.cache.registry_image) ---------------------
def layer_media(desc: m.Descriptor, diff_id: str) -> str:
    """The layer's media type (gzip when unset); CacheReadError for anything but a (gzip) tar."""
    media = desc.mediaType or m.OCI_LAYER_GZIP
    if media not in _GZIP_TYPES | _TAR_TYPES:
        raise CacheReadError(f"cache layer with SHA '{diff_id}' has unsupported media type '{media}'")
    return media


@contextlib.contextmanager
def layer_stream(blob: Any, media: str, diff_id: str) -> Iterator[IO[bytes]]:
    """The uncompressed tar of a layer blob read from ``blob`` (anything with ``read``); read
    errors (bad gzip, a blob that fails its digest check) surface as CacheReadErrors."""
    if media in _GZIP_TYPES:
        with igzip.GzipFile(fileobj=_RawReader(blob), mode="rb") as unzipped:  # type: ignore[no-untyped-call]
            yield _CheckedStream(unzipped, diff_id)  # type: ignore[misc]
    else:
        yield _CheckedStream(blob, diff_id)  # type: ignore[misc]


def compress_layer(layout: Layout, source: IO[bytes], diff_id: str, pins: Path | None = None) -> m.Descriptor:
    """Gzip ``source`` (an uncompressed tar) into a new blob of ``layout``, checking its diffID
    (with ``pins``, a hard link to the blob is left there, named by its hex digest)."""
    raw = hashlib.sha256()
    with layout.blob_writer() as writer:
        with igzip.GzipFile(fileobj=_Sink(writer), mode="wb",  # type: ignore[no-untyped-call]
                            compresslevel=1, mtime=0) as gz:
            for chunk in iter(lambda: source.read(CHUNK), b""):
                raw.update(chunk)
                gz.write(chunk)  # type: ignore[no-untyped-call]
        found = "sha256:" + raw.hexdigest()
        if found != diff_id:
            raise CacheError(f"caching layer ({diff_id}): its contents have SHA '{found}'")
        return writer.commit(m.OCI_LAYER_GZIP, pin=_pin_for(pins, writer.digest))


def _pin_for(pins: Path | None, digest: str) -> Path | None:
    if pins is None:
        return None
    pin = pins / digest.split(":", 1)[1]
    return None if os.path.lexists(pin) else pin


def _check_blob(f: IO[bytes], desc: m.Descriptor, diff_id: str) -> None:
    """Hash an opened blob against ``desc`` (CacheReadError when it differs or is not a file)."""
    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        raise CacheReadError(f"failed to read cache layer with SHA '{diff_id}': its blob is not a regular file")
    digest = hashlib.sha256()
    size = 0
    try:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    except OSError as exc:
        raise CacheReadError(f"failed to read cache layer with SHA '{diff_id}': {exc}") from None
    found = "sha256:" + digest.hexdigest()
    if found != desc.digest or size != desc.size:
        raise CacheReadError(f"expected layer blob of '{diff_id}' to have SHA '{desc.digest}' "
                             f"({desc.size} bytes); found '{found}' ({size} bytes)")


def reused_descriptor(desc: m.Descriptor) -> m.Descriptor:
    """A previous cache image's layer descriptor for the new (OCI) manifest (Docker types mapped)."""
    media = desc.mediaType if desc.mediaType in (m.OCI_LAYER_GZIP, m.OCI_LAYER) else \
        m.TO_OCI_LAYER.get(desc.mediaType, m.OCI_LAYER_GZIP)
    return m.Descriptor(mediaType=media, digest=desc.digest, size=desc.size)


def write_cache_image(layout: Layout, staged: dict[str, m.Descriptor], metadata: CacheMetadata,
                      annotations: dict[str, str] | None = None, pins: Path | None = None) -> m.Descriptor:
    """Write the cache image's config and manifest blobs into ``layout`` (the layer blobs may be
    absent: a sparse layout); ``staged`` maps diffIDs to layer descriptors, in layer order.
    Returns the manifest's descriptor (not tagged)."""
    plat = host_platform()
    if not staged:
        # Some registries refuse an image without layers: an empty cache gets one empty tar, as upstream.
        staged = {EMPTY_TAR_DIFF_ID: compress_layer(layout, io.BytesIO(EMPTY_TAR), EMPTY_TAR_DIFF_ID, pins)}
    draft = Draft.scratch({
        "architecture": plat.architecture,
        "os": plat.os,
        "created": CREATED,
        "config": {"Labels": {METADATA_LABEL: metadata.to_json().decode()}},
    })
    history = {"created": CREATED, "created_by": "Buildpacks cache layer"}
    draft = draft.append(*((Part(desc, diff_id), history) for diff_id, desc in staged.items()))
    return draft.annotate(annotations or {}).write(layout).manifest
