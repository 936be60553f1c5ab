"""The cache image in a registry (``-cache-image <ref>`` in registry mode, as upstream keeps it).

Same image format as :mod:`lifecycle.cache.image` (OCI manifest and config, one gzip layer per
cached layer, metadata in the config label ``io.buildpacks.lifecycle.cache.metadata``); a cache
image written by upstream's lifecycle (Docker media types) reads too.

Reading: the manifest and config are fetched when the cache is opened (an unknown tag is an empty
cache; an unreadable image is a warning and an empty cache). A layer is streamed from the registry
and gunzipped on the fly, never held whole in memory or on disk; the blob's digest is checked at
the end of the stream and the uncompressed bytes are hashed against the diffID.

Writing: the next cache image is staged in a sparse OCI layout in a temporary directory. Added
layers are compressed into it; reused layers are *not* downloaded: their descriptors are kept and
their blobs stay absent from the staging layout. ``commit()`` pushes the staging layout to the
reference (:meth:`~lifecycle.image.registry.RegistryStore.push_layout_image`): every blob is
``HEAD``-checked in the cache repository first, so reused layers and an unchanged config are not
uploaded again, then the manifest is ``PUT`` under the tag. The previous manifest, when different,
is then deleted by digest (best effort, as upstream's image deleter; registry GC frees its blobs).

Verification without downloading: a reused layer must be present in the cache repository with
its recorded size (``HEAD``; the registry verified its digest when it was uploaded). Layers this
process already streamed (the creator's restore step) are remembered: one that could not be read or
whose bytes did not match its digest or diffID is not reused; the rebuilt layer is added instead,
and its blob is uploaded even when the registry claims to have that digest (its storage lost or
damaged the blob), so a corrupt cache heals in one build.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
import threading
import weakref
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import IO, Any, cast

from lifecycle.cache import CacheError, CacheReadError, check_diff_id
from lifecycle.cache.image import (
    CHUNK,
    CacheImageLabel,
    compress_layer,
    layer_media,
    layer_stream,
    reused_descriptor,
    write_cache_image,
)
from lifecycle.cache.metadata import CacheMetadata
from lifecycle.errors import ImageError
from lifecycle.image import model as m
from lifecycle.image.auth import normalize_registry
from lifecycle.image.layout import Layout
from lifecycle.image.registry import RegistryError, RegistryImage, RegistryStore

# (registry, repository, blob digest, diffID) -> whether a full read in this process matched.
_SEEN: dict[tuple[str, str, str, str], bool] = {}
_SEEN_LOCK = threading.Lock()


def _remember(key: tuple[str, str, str, str], good: bool) -> None:
    with _SEEN_LOCK:
        if not good or key not in _SEEN:
            _SEEN[key] = good


def _failed_blob(registry: str, repository: str, digest: str) -> bool:
    """Whether a read of this blob failed in this process (for any diffID)."""
    with _SEEN_LOCK:
        return any(not good and key[:3] == (registry, repository, digest) for key, good in _SEEN.items())


class _ChunkReader:
    """``read(n)`` over an iterator of byte chunks (a streamed registry blob)."""

    def __init__(self, first: bytes, rest: Iterator[bytes]) -> None:
        self._buf = first
        self._rest = rest
        self._eof = False

    def read(self, n: int = -1) -> bytes:
        while not self._eof and (n < 0 or len(self._buf) < n):
            try:
                self._buf += next(self._rest)
            except StopIteration:
                self._eof = True
        if n < 0:
            data, self._buf = self._buf, b""
        else:
            data, self._buf = self._buf[:n], self._buf[n:]
        return data


class _Remembering:
    """Hashes the uncompressed stream; at its end records whether it matched the diffID."""

    def __init__(self, inner: IO[bytes], diff_id: str, key: tuple[str, str, str, str]) -> None:
        self._inner = inner
        self._diff_id = diff_id
        self._key = key
        self._hash = hashlib.sha256()
        self.done = False
        self.good = False

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._inner.read(n)
        except CacheReadError:
            _remember(self._key, False)
            raise
        self._hash.update(data)
        if (not data and n != 0) or n < 0:
            self.done = True
            self.good = "sha256:" + self._hash.hexdigest() == self._diff_id
            _remember(self._key, self.good)
        return data

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


class RegistryImageCache(CacheImageLabel):
    """A cache image in a registry (see the module doc)."""

    def __init__(self, store: RegistryStore, reference: str, logger: Any) -> None:
        self.reference = reference
        self.logger = logger
        self.store = store
        try:
            ref = store.parse(reference)
        except ImageError as exc:
            raise CacheError(f"failed to create image cache: {exc}") from None
        if ref.digest:
            raise CacheError(f"failed to create image cache: cache image '{reference}' must be a tag, "
                             "not a digest")
        self.ref = ref
        self.tag = ref.tag or "latest"
        self.client = store.client(ref.registry)
        self.previous: RegistryImage | None = None
        try:
            self.previous = store.find(reference)
        except ImageError as exc:
            self.logger.warning(f"Ignoring cache image '{reference}': {exc}; using an empty cache")
        self._by_diff: dict[str, m.Descriptor] = {}
        if self.previous is not None:
            for diff_id, desc in zip(self.previous.diff_ids, self.previous.manifest.layers, strict=True):
                self._by_diff.setdefault(diff_id, desc)
        self._staged: dict[str, m.Descriptor] = {}
        self._force: set[str] = set()  # blobs to upload even if the registry says it has them
        self._metadata = CacheMetadata()
        self._committed = False
        self._scratch: Path | None = None
        self._cleanup: weakref.finalize[Any, Any] | None = None

    # ---- reading -----------------------------------------------------------------------------

    def _descriptor(self, diff_id: str) -> m.Descriptor:
        check_diff_id(diff_id)
        desc = self._by_diff.get(diff_id)
        if desc is None:
            raise CacheReadError(f"failed to find cache layer with SHA '{diff_id}'")
        return desc

    def _key(self, desc: m.Descriptor, diff_id: str) -> tuple[str, str, str, str]:
        return normalize_registry(self.ref.registry), self.ref.repository, desc.digest, diff_id

    @contextlib.contextmanager
    def retrieve_layer(self, diff_id: str) -> Iterator[IO[bytes]]:
        """The layer's uncompressed tar, streamed from the registry; the blob digest is checked at
        the end of the stream (a mismatch is a CacheReadError from ``read``)."""
        desc = self._descriptor(diff_id)
        media = layer_media(desc, diff_id)
        key = self._key(desc, diff_id)
        chunks = cast(Generator[bytes, None, None], self.client.stream_blob(self.ref.repository, desc.digest,
                                                                             size=desc.size))
        try:
            try:
                first = next(chunks, b"")
            except RegistryError as exc:
                _remember(key, False)
                raise CacheReadError(f"failed to read cache layer with SHA '{diff_id}': {exc}") from None
            except ImageError as exc:  # 404, or a digest mismatch on an empty body
                _remember(key, False)
                raise CacheReadError(f"failed to find cache layer with SHA '{diff_id}': {exc}") from None
            with layer_stream(_ChunkReader(first, chunks), media, diff_id) as stream:
                yield _Remembering(stream, diff_id, key)  # type: ignore[misc]
        finally:
            chunks.close()

    def verify_layer(self, diff_id: str) -> None:
        """Download the layer and hash it: blob digest and diffID (CacheReadError when either is
        wrong or the blob is missing)."""
        with self.retrieve_layer(diff_id) as stream:
            while stream.read(CHUNK):
                pass
            found = stream.digest  # type: ignore[attr-defined]
        if found != diff_id:
            raise CacheReadError(f"expected layer contents to have SHA '{diff_id}'; found '{found}'")

    # ---- writing -----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._committed:
            raise CacheError("cache cannot be modified after commit")

    def scratch_dir(self) -> Path:
        """A private temporary directory (removed at commit); the staging layout lives in it."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="cnb-cache-"))
            self._cleanup = weakref.finalize(self, shutil.rmtree, str(self._scratch), True)
        return self._scratch

    @property
    def staging(self) -> Layout:
        """The sparse layout the next cache image is assembled in."""
        return Layout(self.scratch_dir() / "staging")

    def add_layer(self, source: Path | IO[bytes], diff_id: str) -> None:
        """Compress the tar into the staging layout, checking its uncompressed digest."""
        self._check_open()
        check_diff_id(diff_id)
        if diff_id in self._staged:
            return
        try:
            if isinstance(source, Path):
                with open(source, "rb") as f:
                    desc = compress_layer(self.staging, f, diff_id)
            else:
                desc = compress_layer(self.staging, source, diff_id)
        except OSError as exc:
            raise CacheError(f"caching layer ({diff_id}): {exc}") from None
        self._staged[diff_id] = desc
        if _failed_blob(normalize_registry(self.ref.registry), self.ref.repository, desc.digest):
            self._force.add(desc.digest)

    def reuse_layer(self, diff_id: str) -> None:
        """Keep the previous layer without downloading it: it must be in the cache repository with
        its recorded size, and must not have failed a read in this process."""
        self._check_open()
        desc = self._descriptor(diff_id)
        seen = _SEEN.get(self._key(desc, diff_id))
        if seen is False:
            raise CacheReadError(f"cache layer with SHA '{diff_id}' (blob {desc.digest}) could not be read "
                                 "intact earlier in this build")
        if seen is None:
            try:
                size = self.client.blob_exists(self.ref.repository, desc.digest)
            except ImageError as exc:
                raise CacheReadError(f"failed to read cache layer with SHA '{diff_id}': {exc}") from None
            if size is None:
                raise CacheReadError(f"failed to find cache layer with SHA '{diff_id}' (blob {desc.digest} "
                                     f"is missing from {self.ref.name})")
            if size and size != desc.size:
                raise CacheReadError(f"expected layer blob of '{diff_id}' to have {desc.size} bytes; the "
                                     f"registry has {size}")
        self._staged[diff_id] = reused_descriptor(desc)

    def set_metadata(self, metadata: CacheMetadata) -> None:
        """Stage the label value."""
        self._check_open()
        self._metadata = metadata

    def commit(self) -> None:
        """Write config and manifest into the staging layout, push it (reused and unchanged blobs
        are found in the repository, not uploaded), then drop the previous manifest if different."""
        self._check_open()
        self._committed = True
        try:
            staging = self.staging
            manifest = write_cache_image(staging, self._staged, self._metadata)
            staging.set_tag(manifest, self.tag)
            for layer in self._staged.values():
                if layer.digest in self._force:
                    self._upload(staging, layer)
            digest = self.store.push_layout_image(staging.path, self.tag, self.reference,
                                                  mount_from=[self.ref.name])
        except (ImageError, OSError) as exc:
            raise CacheError(f"saving cache image '{self.reference}': {exc}") from None
        finally:
            if self._cleanup is not None:
                self._cleanup()
        self.logger.debug(f"Cache image {self.ref.name}@{digest} pushed")
        if self.previous is not None and self.previous.manifest_digest != digest:
            self._delete_previous(self.previous.manifest_digest)

    def _upload(self, staging: Layout, desc: m.Descriptor) -> None:
        """Upload a blob the registry claims to have but served wrong bytes for (its storage lost
        or damaged it): a registry stores an upload whose blob file is missing or replaced."""
        path = staging.blob_path(desc.digest)
        self.logger.debug(f"Uploading cache layer blob {desc.digest} again: reading it failed")
        self.client.upload_blob(self.ref.repository, desc, lambda: open(path, "rb"))  # noqa: SIM115

    def _delete_previous(self, digest: str) -> None:
        url = self.client.url(f"/v2/{self.ref.repository}/manifests/{digest}")
        try:
            # Another build sharing this cache image may have pushed that very manifest under the tag
            # since this one read it: deleting it would delete their tag. (Not atomic: a registry
            # has no compare-and-delete; this closes the wide window, upstream deletes blindly.)
            current = self.client.get_manifest(self.ref.repository, self.tag)
            if current is not None and "sha256:" + hashlib.sha256(current[0]).hexdigest() == digest:
                self.logger.debug(f"not deleting {self.ref.name}@{digest}: the tag names it again")
                return
            self.client.request("DELETE", url, scope=f"repository:{self.ref.repository}:pull,push,delete",
                                ok=(200, 202, 204), missing_ok=True)
        except ImageError as exc:
            self.logger.debug(f"could not delete the previous cache image {self.ref.name}@{digest}: {exc}")
