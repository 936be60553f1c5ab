"""Docker image references: parse and normalise (``index.docker.io``, ``library/``, ``latest``).

The grammar is distribution's (``distribution/reference``): lowercase path components that start
and end with an alphanumeric, so no component can be ``.``, ``..`` or empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_REGISTRY = "index.docker.io"
DEFAULT_TAG = "latest"

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
_DIGEST_HEX = {"sha256": 64, "sha512": 128}


class ReferenceError(ValueError):
    """The text is not a valid image reference."""


@dataclass(frozen=True)
class ImageRef:
    """A parsed reference; ``tag`` is None only when a digest is given."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None
    original: str

    @property
    def name(self) -> str:
        """``<registry>/<repository>``."""
        return f"{self.registry}/{self.repository}"

    @property
    def identifier(self) -> str:
        """The digest if given, else the tag (what ``ref.name`` is written as)."""
        return self.digest or self.tag or DEFAULT_TAG

    def path_parts(self) -> list[str]:
        """Directory components under the layout root (decision D2)."""
        parts = [self.registry, *self.repository.split("/")]
        if self.digest:
            parts.extend(self.digest.split(":", 1))
        else:
            parts.append(self.tag or DEFAULT_TAG)
        return parts

    def written_name(self) -> str:
        """The name as the user wrote it, without tag or digest (the RFC-example fallback)."""
        text = self.original.split("@", 1)[0]
        head, _, last = text.rpartition("/")
        if ":" in last:
            last = last.split(":", 1)[0]
        return f"{head}/{last}" if head else last

    def __str__(self) -> str:
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag}"


def valid_digest(digest: str) -> bool:
    """``sha256:<64 lowercase hex>`` (or sha512)."""
    alg, sep, hexpart = digest.partition(":")
    return (bool(sep) and _DIGEST_HEX.get(alg) == len(hexpart)
            and all(c in "0123456789abcdef" for c in hexpart))


def _valid_registry(text: str) -> bool:
    host, sep, port = text.partition(":")
    if sep and not (port.isdigit() and 0 < len(port) <= 5):
        return False
    return bool(host) and all(_HOST_LABEL.fullmatch(label) for label in host.split("."))


def parse(text: str) -> ImageRef:
    """Parse ``text``; raise :class:`ReferenceError` with upstream's wording on bad input."""
    if not text or len(text) > 512 or text != text.strip():
        raise ReferenceError(f"could not parse reference: {text}")
    rest, digest = text, None
    if "@" in rest:
        rest, _, digest = rest.partition("@")
        if "@" in digest or not valid_digest(digest):
            raise ReferenceError(f"could not parse reference: {text}")
    tag = None
    head, slash, last = rest.rpartition("/")
    if ":" in last:
        last, _, tag = last.partition(":")
        if not _TAG.fullmatch(tag):
            raise ReferenceError(f"could not parse reference: {text}")
        rest = f"{head}{slash}{last}"
    first, slash, remainder = rest.partition("/")
    if slash and (first == "localhost" or "." in first or ":" in first):
        registry, repository = first, remainder
        if not _valid_registry(registry):
            raise ReferenceError(f"could not parse reference: {text}")
    else:
        registry, repository = DEFAULT_REGISTRY, rest
    if registry == "docker.io":
        registry = DEFAULT_REGISTRY
    components = repository.split("/")
    if not repository or len(repository) > 255 or not all(_COMPONENT.fullmatch(c) for c in components):
        raise ReferenceError(f"could not parse reference: {text}")
    if registry == DEFAULT_REGISTRY and len(components) == 1:
        repository = f"library/{repository}"
    if digest is not None:
        tag = None  # a tag next to a digest is dropped, as upstream does
    elif tag is None:
        tag = DEFAULT_TAG
    return ImageRef(registry=registry, repository=repository, tag=tag, digest=digest, original=text)
