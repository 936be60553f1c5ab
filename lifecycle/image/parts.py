"""Moving image parts between stores: layer descriptors of any stored image, OCI layer types,
bringing local blobs into an output layout, and the ``ref.name`` a reference is saved under.
Shared by the exporter and the rebaser."""

from __future__ import annotations

from lifecycle.image import model as m
from lifecycle.image import ref as refs
from lifecycle.image.layout import Layout
from lifecycle.image.store import StoredImage


def layer_descriptors(image: StoredImage) -> list[m.Descriptor]:
    """The image's layer descriptors; a daemon image has no manifest, so its layers are named by
    diffID as uncompressed tars (what a Docker-loadable archive of them would hold)."""
    if image.manifest is not None:
        return list(image.manifest.layers)
    return [m.Descriptor(mediaType=m.OCI_LAYER, digest=d, size=0) for d in image.diff_ids]


def link_blob(image: StoredImage, desc: m.Descriptor, out: Layout) -> None:
    """Bring a base or reused blob into ``out`` when it is on local disk (layout images); remote
    blobs stay missing here and are mounted or skipped when the image is published."""
    layout = getattr(image, "layout", None)
    if isinstance(layout, Layout):
        out.add_blob_from(layout.blob_path(desc.digest), desc)


def oci_layer(desc: m.Descriptor) -> m.Descriptor:
    """The same layer bytes described with OCI media types (D5: never a mixed manifest)."""
    media = m.TO_OCI_LAYER.get(desc.mediaType, desc.mediaType or m.OCI_LAYER_GZIP)
    return m.Descriptor(mediaType=media, digest=desc.digest, size=desc.size, urls=desc.urls)


def ref_name(reference: str) -> str:
    """The ``org.opencontainers.image.ref.name`` a reference is saved under: its tag (or digest)."""
    if reference.startswith("/"):
        return "latest"
    return refs.parse(reference).identifier
