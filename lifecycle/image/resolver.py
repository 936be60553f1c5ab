"""The one resolver: an image reference -> its OCI layout directory under the layout root (D2).

Canonical: ``<root>/<registry>/<repository>/<tag>`` or ``.../<alg>/<hex>``. Fallback (the RFC's
examples): ``<root>/<name as written>`` holding a manifest whose ``ref.name`` is the tag. A
reference that already names a path under the root is used as that path. Nothing ever resolves
outside the root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lifecycle.errors import InputError
from lifecycle.image import ref as refs


@dataclass(frozen=True)
class Location:
    """A layout directory, and what to select in its ``index.json``.

    ``tag`` selects by ``org.opencontainers.image.ref.name``; ``digest`` by manifest digest.
    """

    path: Path
    tag: str | None
    digest: str | None
    ref: refs.ImageRef | None


def within(root: Path, path: Path) -> bool:
    """Lexical containment: ``path`` is ``root`` or below it."""
    root_s, path_s = os.path.normpath(root), os.path.normpath(path)
    return path_s == root_s or path_s.startswith(root_s.rstrip("/") + "/")


def split_identifier(text: str) -> tuple[str, str | None]:
    """Split ``<path>@<digest>`` (how ``analyzed.toml`` names a layout image)."""
    path, sep, digest = text.rpartition("@")
    if sep and path.startswith("/") and refs.valid_digest(digest):
        return path, digest
    return text, None


class Resolver:
    """Maps references to layout directories under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.normpath(os.path.abspath(root)))

    def canonical(self, reference: str) -> Location:
        """The canonical directory of ``reference`` (where the exporter writes it)."""
        as_path = self._as_path(reference)
        if as_path is not None:
            return as_path
        parsed = self._parse(reference)
        path = self.root.joinpath(*parsed.path_parts())
        self._contain(path, reference)
        return Location(path, parsed.tag, parsed.digest, parsed)

    def candidates(self, reference: str) -> list[Location]:
        """Every place ``reference`` may live, in lookup order."""
        first = self.canonical(reference)
        if first.ref is None:
            return [first]
        fallback = self.root / first.ref.written_name()
        out = [first]
        if (within(self.root, fallback) and fallback != first.path
                and within(Path(os.path.realpath(self.root)), Path(os.path.realpath(fallback)))):
            out.append(Location(fallback, first.ref.tag, first.ref.digest, first.ref))
        return out

    def locate(self, reference: str) -> Location | None:
        """The first candidate directory that holds a layout (``index.json``), or None."""
        for loc in self.candidates(reference):
            if os.path.lexists(loc.path / "index.json"):  # an odd index.json is refused on read, not skipped
                return loc
        return None

    def tried(self, reference: str) -> list[str]:
        """The candidate paths, for "not found" messages."""
        return [str(loc.path) for loc in self.candidates(reference)]

    def _parse(self, reference: str) -> refs.ImageRef:
        try:
            return refs.parse(reference)
        except refs.ReferenceError as exc:
            raise InputError(f"failed to parse arguments: {exc}") from None

    def _as_path(self, reference: str) -> Location | None:
        text, digest = split_identifier(reference)
        if not text.startswith("/"):
            return None
        path = Path(os.path.normpath(text))
        if not within(self.root, path):
            raise InputError(f"failed to parse arguments: image path '{text}' is outside the layout "
                             f"directory '{self.root}'")
        self._contain_real(path, text)
        return Location(path, None, digest, None)

    def _contain(self, path: Path, reference: str) -> None:
        # The grammar already forbids '..' and absolute parts; this is the belt to those braces.
        if not within(self.root, path):
            raise InputError(f"failed to parse arguments: reference '{reference}' resolves outside the "
                             f"layout directory")
        self._contain_real(path, reference)

    def _contain_real(self, path: Path, reference: str) -> None:
        """Containment by real path, not by spelling: a symlink under the root that leads out of it
        (at the layout dir or any parent) makes the reference unusable (spec/trust-model.md)."""
        try:
            real = Path(os.path.realpath(path))
        except ValueError:  # a NUL in the name: no such file can exist, the spelling checks decide
            return
        if not within(Path(os.path.realpath(self.root)), real):
            raise InputError(f"failed to parse arguments: reference '{reference}' resolves outside the "
                             f"layout directory '{self.root}' through a symlink")


# A layout's own entries: an output whose directory would be (or be inside) one of these, below
# another layout, would write into that layout (spec/trust-model.md).
LAYOUT_ENTRIES = ("blobs", "index.json", "oci-layout")


def check_output(text: str, *, oci: bool, oci_dir: str = "") -> None:
    """A name a phase writes: a digest cannot be written to (exit 3), and in OCI mode no directory
    component under the layout root may be a layout's own entry name (exit 3). Empty: nothing."""
    if not text:
        return
    parts: tuple[str, ...] = ()
    if text.startswith("/"):
        path, digest = split_identifier(text)
        root = Path(os.path.normpath(os.path.abspath(oci_dir or "/")))
        if within(root, Path(path)):
            parts = Path(os.path.normpath(path)).relative_to(root).parts
    else:
        try:
            parsed = refs.parse(text)
        except refs.ReferenceError as exc:
            raise InputError(f"failed to parse arguments: {exc}") from None
        digest, parts = parsed.digest, tuple(parsed.path_parts())
    if digest:
        raise InputError(f"failed to parse arguments: output image '{text}' names a digest; images are "
                         "written under a tag")
    clash = sorted({part for part in parts if part in LAYOUT_ENTRIES}) if oci else []
    if clash:
        raise InputError(f"failed to parse arguments: output image '{text}' would be written into a "
                         f"layout's own '{clash[0]}' entry (no repository component or tag of a layout "
                         f"output may be {', '.join(LAYOUT_ENTRIES)})")
