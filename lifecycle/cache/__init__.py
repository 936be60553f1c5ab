"""The build cache: what the restorer reads and the exporter writes.

Two kinds share one interface (:class:`Cache`):

- :class:`~lifecycle.cache.volume.VolumeCache` (``-cache-dir``): upstream's directory format;
- :class:`~lifecycle.cache.registry_image.RegistryImageCache` (``-cache-image <ref>``, also with
  ``-oci``, as upstream and pack expect; not with ``-daemon``): a cache image in a registry;
- :class:`~lifecycle.cache.image.ImageCache` (``-cache-image oci:<ref>`` with ``-oci``): a cache
  image in an OCI layout under the layout root (decision D14's explicit form).

Layers are identified by diffID (``sha256:<hex>`` of the uncompressed tar). Reading a layer
hands out the uncompressed tar stream; the reader verifies it (the restorer hashes while it
extracts). A missing or corrupt layer raises :class:`CacheReadError`, which callers treat as
"skip this layer with a warning", never as a failed build.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from lifecycle.cache.metadata import METADATA_LABEL, CacheMetadata

if TYPE_CHECKING:
    from lifecycle.image.auth import Keychain
    from lifecycle.platform.settings import Settings

__all__ = ["LAYOUT_CACHE_PREFIX", "METADATA_LABEL", "Cache", "CacheError", "CacheMetadata", "CacheReadError",
           "cache_image_in_layout", "check_cache_image", "check_diff_id", "from_settings", "open_cache"]

_DIFF_ID = re.compile(r"^sha256:[0-9a-f]{64}$")


class CacheError(Exception):
    """The cache could not be opened, read or written."""


class CacheReadError(CacheError):
    """A cached layer is missing, unreadable or does not match its diffID (skip it, warn)."""


def check_diff_id(diff_id: str) -> str:
    """diffIDs name files: accept only ``sha256:<64 lowercase hex>``."""
    if not _DIFF_ID.match(diff_id):
        raise CacheError(f"invalid layer diffID '{diff_id}'")
    return diff_id


class Cache(Protocol):
    """What the restorer and the exporter need from a cache."""

    @property
    def name(self) -> str:
        """The cache directory or image reference, for messages."""
        ...

    def exists(self) -> bool:
        """Whether a committed cache was found."""
        ...

    def metadata(self) -> CacheMetadata:
        """The committed metadata; empty (with a warning) when missing or unreadable."""
        ...

    def retrieve_layer(self, diff_id: str) -> AbstractContextManager[IO[bytes]]:
        """The committed layer's uncompressed tar as a stream (not verified: hash while reading).

        Raises CacheReadError when the layer is not in the cache."""
        ...

    def verify_layer(self, diff_id: str) -> None:
        """Re-hash the committed layer; CacheReadError when missing or different."""
        ...

    def add_layer(self, source: Path | IO[bytes], diff_id: str) -> None:
        """Stage a layer tar (a file path, linked or copied; or an uncompressed stream)."""
        ...

    def reuse_layer(self, diff_id: str) -> None:
        """Stage the committed layer ``diff_id`` unchanged (verified first; CacheReadError if bad)."""
        ...

    def set_metadata(self, metadata: CacheMetadata) -> None:
        """Stage the metadata."""
        ...

    def commit(self) -> None:
        """Make the staged layers and metadata the committed cache (atomically)."""
        ...

    def scratch_dir(self) -> Path:
        """A directory for temporary layer tars, on the cache's filesystem when possible."""
        ...


LAYOUT_CACHE_PREFIX = "oci:"
DAEMON_CACHE_IMAGE = ("-cache-image is not supported with -daemon (cache images live in a registry, or "
                      "in a layout with -oci); use -cache-dir")


def open_cache(*, cache_dir: str | Path | None, cache_image: str | None,
               image_cache: Callable[[str], Cache] | None, logger: Any) -> Cache | None:
    """Open the cache the platform asked for: the image wins over the directory (upstream); None
    when neither is given. ``image_cache`` opens a cache image by reference (see
    :func:`from_settings`). Raises CacheError when the cache cannot be opened."""
    if cache_image:
        if image_cache is None:
            raise CacheError("-cache-image needs an image store: a registry, or a layout with -oci")
        return image_cache(cache_image)
    if cache_dir:
        from lifecycle.cache.volume import VolumeCache

        return VolumeCache(Path(cache_dir), logger)
    return None


def cache_image_in_layout(value: str) -> str | None:
    """The reference of ``-cache-image oci:<ref>`` (a cache image kept in a layout), else None."""
    return value[len(LAYOUT_CACHE_PREFIX):] if value.startswith(LAYOUT_CACHE_PREFIX) else None


def check_cache_image(settings: Settings) -> None:
    """Input errors of ``-cache-image`` (exit 3): the layout form needs ``-oci`` and a reference."""
    from lifecycle.errors import InputError

    value = str(settings["cache-image"] or "")
    layout_ref = cache_image_in_layout(value)
    if layout_ref is None:
        return
    if not settings["oci"]:
        raise InputError(f"-cache-image {value}: the {LAYOUT_CACHE_PREFIX}<ref> form keeps the cache in an OCI "
                         "layout and needs -oci")
    if not layout_ref:
        raise InputError(f"-cache-image {value}: a reference is required after '{LAYOUT_CACHE_PREFIX}'")
    from lifecycle.image.resolver import check_output

    check_output(layout_ref, oci=True, oci_dir=str(settings["oci-dir"] or ""))


def from_settings(settings: Settings, logger: Any, keychain: Keychain | None = None) -> Cache | None:
    """``open_cache`` from a phase's resolved settings (``-cache-dir``, ``-cache-image``, ``-oci``,
    ``-oci-dir``, ``-daemon``, ``-insecure-registry``; registry credentials from
    ``CNB_REGISTRY_AUTH`` and the Docker config, as the image store gets them, or ``keychain``).

    Decision D14: ``-cache-image <ref>`` names a registry image in every mode (with ``-oci`` too,
    as upstream and pack's ``oci:`` builds expect); ``-cache-image oci:<ref>`` keeps the cache image
    in a layout under ``-oci-dir`` (needs ``-oci``); ``-daemon`` has no cache image."""
    image = str(settings["cache-image"] or "")
    if image and settings["daemon"]:
        raise CacheError(DAEMON_CACHE_IMAGE)

    layout_ref = cache_image_in_layout(image) if image else None
    if layout_ref is not None and not settings["oci"]:
        raise CacheError(f"-cache-image {image}: the {LAYOUT_CACHE_PREFIX}<ref> form needs -oci")

    def image_cache(reference: str) -> Cache:
        from lifecycle.image.store import layout_store, registry_store

        if layout_ref is not None:
            from lifecycle.cache.image import ImageCache

            return ImageCache(layout_store(str(settings["oci-dir"])), reference, logger)
        from lifecycle.cache.registry_image import RegistryImageCache

        store = registry_store(tuple(settings["insecure-registry"] or ()), settings.environ, keychain,
                               registry_timeout=int(settings["registry-timeout"]),
                               registry_deadline=int(settings["registry-deadline"]))
        return RegistryImageCache(store, reference, logger)

    return open_cache(cache_dir=str(settings["cache-dir"] or ""),
                      cache_image=layout_ref if layout_ref is not None else image, image_cache=image_cache,
                      logger=logger)
