"""OCI 1.1 artifacts that refer to an image (``subject``), and the launch SBOM as such artifacts.

An artifact here is an OCI image manifest with an ``artifactType``, the empty config
(``application/vnd.oci.empty.v1+json``, ``{}``), its files as layers (each with an
``org.opencontainers.image.title``, so ``oras pull`` writes it under that name) and a ``subject``
naming the image it is about. It holds no time or path of the build: the same files and subject give
the same manifest digest. Where referrers are kept:

- a layout lists the artifact manifest in ``index.json`` without a ``ref.name`` (as notation does
  with signatures), beside the tags; tagging never drops such entries (:meth:`Layout.set_tag`);
- a registry gets the manifest by digest; one that does not answer with ``OCI-Subject`` (no
  referrers API) gets the fallback tag ``sha256-<hex of the subject digest>`` holding an image index
  of its referrers (OCI distribution 1.1), updated in place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lifecycle.image import model as m
from lifecycle.image.layout import Layout

EMPTY_MEDIA = "application/vnd.oci.empty.v1+json"
EMPTY_DATA = b"{}"
TITLE = "org.opencontainers.image.title"

# Launch SBOM files (``sbom.<ext>`` under ``<layers>/sbom/launch``) by extension, and the
# artifactType (= layer media type) each format is attached as.
SBOM_FORMATS: dict[str, str] = {
    "cdx.json": "application/vnd.cyclonedx+json",
    "spdx.json": "application/spdx+json",
    "syft.json": "application/vnd.syft+json",
}


@dataclass(frozen=True)
class Blob:
    """One blob of an artifact and its bytes."""

    descriptor: m.Descriptor
    data: bytes

    @classmethod
    def of(cls, data: bytes, media_type: str, annotations: Mapping[str, str] | None = None) -> Blob:
        """``data`` described as ``media_type``."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        return cls(m.Descriptor(mediaType=media_type, digest=digest, size=len(data),
                                annotations=dict(annotations) if annotations else None), data)


EMPTY_CONFIG = Blob.of(EMPTY_DATA, EMPTY_MEDIA)


@dataclass(frozen=True)
class Artifact:
    """An artifact manifest about ``subject`` with ``files`` as its layers."""

    artifact_type: str
    files: tuple[Blob, ...]
    subject: m.Descriptor

    @property
    def blobs(self) -> list[Blob]:
        """Config first, then the files."""
        return [EMPTY_CONFIG, *self.files]

    def manifest_bytes(self) -> bytes:
        """The manifest blob (canonical JSON: same artifact, same digest)."""
        subject = m.Descriptor(mediaType=self.subject.mediaType or m.OCI_MANIFEST, digest=self.subject.digest,
                               size=self.subject.size)
        return m.canonical_json({
            "schemaVersion": 2,
            "mediaType": m.OCI_MANIFEST,
            "artifactType": self.artifact_type,
            "config": EMPTY_CONFIG.descriptor.dump(),
            "layers": [blob.descriptor.dump() for blob in self.files],
            "subject": subject.dump(),
        })

    @property
    def descriptor(self) -> m.Descriptor:
        """How ``index.json`` and a referrers index list it (with its ``artifactType``)."""
        data = self.manifest_bytes()
        return m.Descriptor(mediaType=m.OCI_MANIFEST, digest="sha256:" + hashlib.sha256(data).hexdigest(),
                            size=len(data), artifactType=self.artifact_type)


def subject_of(digest: str, size: int, media_type: str = m.OCI_MANIFEST) -> m.Descriptor:
    """The descriptor of an image manifest (by default an OCI one, as we save), as a ``subject``."""
    return m.Descriptor(mediaType=media_type, digest=digest, size=size)


def sbom_artifacts(files: Mapping[str, bytes], subject: m.Descriptor) -> list[Artifact]:
    """One artifact per SBOM format present in ``files`` (path relative to ``<layers>/sbom/launch``
    -> bytes), each holding that format's files in path order, titled by their paths; files of
    other names are not SBOMs and are left out. Artifacts in the order of :data:`SBOM_FORMATS`."""
    out: list[Artifact] = []
    for ext, media in SBOM_FORMATS.items():
        names = sorted(name for name in files if name.rsplit("/", 1)[-1] == f"sbom.{ext}")
        if names:
            out.append(Artifact(media, tuple(Blob.of(files[n], media, {TITLE: n}) for n in names), subject))
    return out


def write_artifact(layout: Layout, artifact: Artifact) -> m.Descriptor:
    """Put the artifact's blobs and manifest into ``layout`` (not listed in ``index.json``)."""
    for blob in artifact.blobs:
        layout.put_blob(blob.data, blob.descriptor.mediaType)
    layout.put_blob(artifact.manifest_bytes(), m.OCI_MANIFEST)
    return artifact.descriptor


def attach_in_layout(layout: Layout, artifacts: Sequence[Artifact]) -> list[m.Descriptor]:
    """Write ``artifacts`` into ``layout`` and list them in its ``index.json`` (once each)."""
    descs = [write_artifact(layout, artifact) for artifact in artifacts]
    layout.add_untagged(descs)
    return descs


def fallback_tag(subject_digest: str) -> str:
    """The referrers tag schema's tag for ``subject_digest``: ``<alg>-<hex>``."""
    return subject_digest.replace(":", "-", 1)


def with_referrer(index: m.Index | None, desc: m.Descriptor) -> m.Index | None:
    """The referrers index ``index`` (None: none yet) with ``desc`` added; None when it is listed already."""
    manifests = list(index.manifests) if index is not None else []
    if any(d.digest == desc.digest for d in manifests):
        return None
    return m.Index(schemaVersion=2, mediaType=m.OCI_INDEX, manifests=[*manifests, desc])
