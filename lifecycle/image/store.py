"""Image stores: where phases find and put images (OCI layouts, a registry, a Docker daemon).

A store's ``find(reference)`` returns a :class:`StoredImage` (a layout
:class:`~lifecycle.image.layout.Image`, a :class:`~lifecycle.image.registry.RegistryImage` or a
:class:`~lifecycle.image.daemon.DaemonImage`) or None when the image does not exist; malformed
content and unreachable registries or daemons raise :class:`~lifecycle.errors.ImageError`.
``lifecycle.image.registry`` and ``lifecycle.image.daemon`` are imported only when their mode is
chosen (so ``-oci`` never imports ``docker`` or ``httpx``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from lifecycle.errors import ImageError, InputError
from lifecycle.image import model as m
from lifecycle.image.layout import Image, Layout
from lifecycle.image.resolver import Location, Resolver

if TYPE_CHECKING:
    from lifecycle.image.auth import Keychain
    from lifecycle.image.daemon import DaemonStore
    from lifecycle.image.registry import RegistryStore


class StoredImage(Protocol):
    """What every store's images offer (layout, registry, daemon)."""

    @property
    def identifier(self) -> str:
        """Layout: ``<path>@<digest>``; registry: ``<registry>/<repo>@<digest>``; daemon: image ID."""
        ...

    @property
    def path(self) -> str | os.PathLike[str]:
        """Layout: the directory; registry and daemon: the reference as given."""
        ...

    @property
    def config(self) -> m.ImageConfig:
        """The image config."""
        ...

    @property
    def manifest(self) -> m.Manifest | None:
        """The manifest (None for daemon images: the daemon keeps none)."""
        ...

    @property
    def manifest_digest(self) -> str:
        """The manifest's digest ("" for daemon images)."""
        ...

    @property
    def diff_ids(self) -> list[str]:
        """The layers' diffIDs."""
        ...


class ImageStore(Protocol):
    """What phases need to read images."""

    kind: str

    def find(self, reference: str) -> StoredImage | None:
        """The image, or None when it does not exist."""
        ...

    def describe(self, reference: str) -> str:
        """Where ``reference`` was looked for (for "not found" messages)."""
        ...

    def where(self, reference: str) -> str:
        """The one place ``reference`` would be (for info lines)."""
        ...


class LayoutStore:
    """Images as OCI layout directories under one root, found through the shared resolver."""

    kind = "layout"

    def __init__(self, root: Path) -> None:
        self.resolver = Resolver(root)

    @property
    def root(self) -> Path:
        """The layout root (``-oci-dir``)."""
        return self.resolver.root

    def find(self, reference: str) -> Image | None:
        """Locate and load ``reference``; None when no candidate directory has a layout."""
        loc = self.resolver.locate(reference)
        if loc is None:
            return None
        return self.load(loc)

    def load(self, loc: Location) -> Image:
        """Load the image at a resolved location."""
        layout = Layout(loc.path)
        try:
            return layout.image(tag=loc.tag, digest=loc.digest)
        except ImageError as exc:
            raise ImageError(f"invalid image layout at {loc.path}: {exc}") from None

    def describe(self, reference: str) -> str:
        """The first candidate path, then the others tried."""
        tried = self.resolver.tried(reference)
        return tried[0] + (f" (also tried: {', '.join(tried[1:])})" if len(tried) > 1 else "")

    def where(self, reference: str) -> str:
        """The canonical path of ``reference``."""
        return str(self.resolver.canonical(reference).path)

    def output_path(self, reference: str) -> Path:
        """Where the exporter writes ``reference`` (always the canonical path)."""
        return self.resolver.canonical(reference).path


def open_store(*, oci: bool, daemon: bool, oci_dir: str, insecure_registries: Sequence[str] = (),
               environ: Mapping[str, str] | None = None,
               keychain: Keychain | None = None) -> LayoutStore | RegistryStore | DaemonStore:
    """Pick exactly one store, as upstream's ``image.NewHandler`` does (decisions D1, D6).

    ``-oci``: layouts under ``oci_dir``; ``-daemon``: the Docker daemon at ``DOCKER_HOST``;
    neither: registries (HTTPS, except ``insecure_registries`` over HTTP; credentials from
    ``CNB_REGISTRY_AUTH`` and the Docker config named by ``environ``, unless ``keychain`` is given:
    the CLI reads it as root before dropping privileges). Both: exit 3.
    """
    env = dict(environ if environ is not None else {})
    if oci and daemon:
        raise InputError("exporting to multiple targets is unsupported")
    if daemon:
        from lifecycle.image.daemon import DaemonStore

        return DaemonStore(env.get("DOCKER_HOST", ""))
    if not oci:
        from lifecycle.image import auth
        from lifecycle.image.registry import RegistryStore

        return RegistryStore(insecure_registries=insecure_registries,
                             keychain=keychain or auth.Keychain.from_environ(env))
    if not oci_dir:
        raise InputError("defining a layout directory is required when OCI feature is enabled. Use "
                         "-oci-dir flag or CNB_OCI_PATH environment variable")
    return LayoutStore(Path(oci_dir))
