"""Image stores: where phases find and put images. Layout now; registry and daemon plug in here.

A store's ``find(reference)`` returns an :class:`~lifecycle.image.layout.Image` or None when the
image does not exist; malformed content raises :class:`~lifecycle.errors.ImageError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from lifecycle.errors import ImageError, InputError
from lifecycle.image.layout import Image, Layout
from lifecycle.image.resolver import Location, Resolver


class ImageStore(Protocol):
    """What phases need to read images."""

    kind: str

    def find(self, reference: str) -> Image | None:
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


def open_store(*, oci: bool, daemon: bool, oci_dir: str) -> LayoutStore:
    """Pick exactly one store, as upstream's ``image.NewHandler`` does (decisions D1, D6)."""
    if oci and daemon:
        raise InputError("exporting to multiple targets is unsupported")
    if daemon:
        raise InputError("reading and writing images in a Docker daemon (-daemon) is not supported yet")
    if not oci:
        raise InputError("registry mode is not supported yet; use -oci (or CNB_USE_OCI=true) to work "
                         "with OCI image layouts")
    if not oci_dir:
        raise InputError("defining a layout directory is required when OCI feature is enabled. Use "
                         "-oci-dir flag or CNB_OCI_PATH environment variable")
    return LayoutStore(Path(oci_dir))
