"""pydantic models of OCI/Docker descriptors, indexes, manifests and image configs.

Unknown fields are kept (``extra="allow"``) so a run image's config survives a round trip.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lifecycle.errors import ImageError

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

INDEX_TYPES = {OCI_INDEX, DOCKER_LIST}
MANIFEST_TYPES = {OCI_MANIFEST, DOCKER_MANIFEST}
REF_NAME = "org.opencontainers.image.ref.name"
# Docker layer types and their OCI equivalents: the bytes are the same, only the label differs.
TO_OCI_LAYER = {
    DOCKER_LAYER_GZIP: OCI_LAYER_GZIP,
    "application/vnd.docker.image.rootfs.diff.tar": OCI_LAYER,
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": OCI_LAYER_GZIP,
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def dump(self) -> dict[str, Any]:
        """JSON-ready dict: aliases, no None values."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Platform(_Model):
    """Descriptor platform."""

    architecture: str = ""
    os: str = ""
    variant: str | None = None
    os_version: str | None = Field(default=None, alias="os.version")


class Descriptor(_Model):
    """An OCI content descriptor."""

    mediaType: str = ""
    digest: str
    size: int
    annotations: dict[str, str] | None = None
    platform: Platform | None = None
    urls: list[str] | None = None
    artifactType: str | None = None  # OCI 1.1: on descriptors of artifact manifests (referrers)

    @property
    def ref_name(self) -> str | None:
        """The ``org.opencontainers.image.ref.name`` annotation."""
        return (self.annotations or {}).get(REF_NAME)


class Index(_Model):
    """``index.json`` or an image index / Docker manifest list blob."""

    schemaVersion: int = 2
    mediaType: str | None = None
    manifests: list[Descriptor] = Field(default_factory=list)
    annotations: dict[str, str] | None = None


class Manifest(_Model):
    """An OCI image manifest or a Docker v2s2 manifest."""

    schemaVersion: int = 2
    mediaType: str | None = None
    config: Descriptor
    layers: list[Descriptor] = Field(default_factory=list)
    annotations: dict[str, str] | None = None


class ContainerConfig(_Model):
    """The ``config`` object of an image config."""

    User: str | None = None
    ExposedPorts: dict[str, Any] | None = None
    Env: list[str] | None = None
    Entrypoint: list[str] | None = None
    Cmd: list[str] | None = None
    Volumes: dict[str, Any] | None = None
    WorkingDir: str | None = None
    Labels: dict[str, str] | None = None
    StopSignal: str | None = None


class RootFS(_Model):
    """``rootfs``: the layers' diffIDs in order."""

    type: str = "layers"
    diff_ids: list[str] = Field(default_factory=list)


class History(_Model):
    """One history entry."""

    created: str | None = None
    created_by: str | None = None
    author: str | None = None
    comment: str | None = None
    empty_layer: bool | None = None


class ImageConfig(_Model):
    """An image config blob (OCI or Docker)."""

    created: str | None = None
    author: str | None = None
    architecture: str = ""
    os: str = ""
    variant: str | None = None
    os_version: str | None = Field(default=None, alias="os.version")
    config: ContainerConfig = Field(default_factory=ContainerConfig)
    rootfs: RootFS = Field(default_factory=RootFS)
    history: list[History] | None = None

    @property
    def labels(self) -> dict[str, str]:
        """Image labels (empty dict when none)."""
        return dict(self.config.Labels or {})


def validation_text(exc: ValidationError) -> str:
    """The first validation problem as ``<location>: <message>``."""
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    return f"{loc + ': ' if loc else ''}{first['msg']}"


def loads(raw: str | bytes) -> Any:
    """``json.loads`` for text someone else wrote (labels, metadata): nesting too deep for the
    parser is a ValueError like any other malformed JSON, never a RecursionError."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def parse_blob(model: type[Any], data: bytes, what: str) -> Any:
    """JSON bytes -> ``model``; malformed input is an :class:`ImageError` naming ``what``."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deeply
        raise ImageError(f"{what} is not valid JSON") from None
    try:
        return model.model_validate(raw)
    except RecursionError:
        raise ImageError(f"{what} is not valid: nested too deeply") from None
    except ValidationError as exc:
        raise ImageError(f"{what} is not valid: {validation_text(exc)}") from None


def canonical_json(data: dict[str, Any]) -> bytes:
    """Stable bytes for a blob we write: same content, same digest."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
