"""Build OCI layouts by hand (stdlib only, independent of the code under test), and snapshot trees.

Every helper writes exactly what it says, so a test can shape any layout a real tool (or a broken
one) might leave behind: Docker or OCI media types, nested indexes, annotations, missing blobs.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
REF_NAME = "org.opencontainers.image.ref.name"

Desc = dict[str, Any]


def put_blob(layout: Path, data: bytes, media_type: str) -> Desc:
    """Write ``data`` under ``blobs/sha256``; return its descriptor."""
    digest = hashlib.sha256(data).hexdigest()
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (blobs / digest).write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def put_json(layout: Path, data: Mapping[str, Any], media_type: str) -> Desc:
    """Write a JSON blob (compact, stable bytes)."""
    return put_blob(layout, json.dumps(data, separators=(",", ":"), sort_keys=True).encode(), media_type)


def layer_tar(files: Mapping[str, bytes]) -> bytes:
    """An uncompressed, reproducible tar of ``files`` (name -> content)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), 0o644, 315532801
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def add_image(layout: Path, *, os_name: str = "linux", arch: str = "amd64", variant: str | None = None,
              labels: Mapping[str, str] | None = None, files: Mapping[str, bytes] | None = None,
              docker: bool = False, annotations: Mapping[str, str] | None = None) -> Desc:
    """Write one image's layer, config and manifest blobs; return the manifest descriptor."""
    raw = layer_tar(files if files is not None else {"hello.txt": b"hello\n"})
    layer = put_blob(layout, gzip.compress(raw, compresslevel=6, mtime=0),
                     DOCKER_LAYER_GZIP if docker else OCI_LAYER_GZIP)
    config: dict[str, Any] = {
        "architecture": arch, "os": os_name,
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Labels": dict(labels or {})},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
    }
    if variant:
        config["variant"] = variant
    if not os_name:
        del config["os"]
    cfg = put_json(layout, config, DOCKER_CONFIG if docker else OCI_CONFIG)
    manifest: dict[str, Any] = {"schemaVersion": 2,
                                "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
                                "config": cfg, "layers": [layer]}
    if annotations:
        manifest["annotations"] = dict(annotations)
    return put_json(layout, manifest, manifest["mediaType"])


def add_index(layout: Path, descriptors: list[Desc], media_type: str | None = OCI_INDEX) -> Desc:
    """Write a nested index (or Docker manifest list) blob; return its descriptor."""
    data: dict[str, Any] = {"schemaVersion": 2, "manifests": descriptors}
    if media_type:
        data["mediaType"] = media_type
    return put_json(layout, data, media_type or OCI_INDEX)


def named(desc: Desc, ref_name: str) -> Desc:
    """``desc`` annotated with ``org.opencontainers.image.ref.name``."""
    return {**desc, "annotations": {**desc.get("annotations", {}), REF_NAME: ref_name}}


def on(desc: Desc, os_name: str, arch: str, variant: str | None = None) -> Desc:
    """``desc`` with a ``platform``."""
    platform = {"os": os_name, "architecture": arch, **({"variant": variant} if variant else {})}
    return {**desc, "platform": platform}


def write_index(layout: Path, descriptors: list[Desc], media_type: str | None = OCI_INDEX,
                version: str | None = "1.0.0") -> None:
    """Write ``index.json`` (and ``oci-layout`` unless ``version`` is None)."""
    layout.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"schemaVersion": 2, "manifests": descriptors}
    if media_type:
        data["mediaType"] = media_type
    (layout / "index.json").write_text(json.dumps(data, indent=2))
    if version is not None:
        (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": version}))


def make_layout(layout: Path, tag: str | None = "latest", **image: Any) -> Desc:
    """A one-image layout; the descriptor is named ``tag`` (no annotation when None)."""
    desc = add_image(layout, **image)
    write_index(layout, [named(desc, tag) if tag else desc])
    return desc


def blob_file(layout: Path, digest: str) -> Path:
    """Path of blob ``digest`` in ``layout``."""
    alg, hexpart = digest.split(":", 1)
    return layout / "blobs" / alg / hexpart


def layer_digests(layout: Path, manifest_digest: str) -> list[str]:
    """The layer digests a manifest lists."""
    manifest = json.loads(blob_file(layout, manifest_digest).read_bytes())
    return [layer["digest"] for layer in manifest["layers"]]


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root``: relative path -> kind and content hash (or link target)."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            st = path.lstat()
            if path.is_symlink():
                out[rel] = f"link {os.readlink(path)}"
            elif path.is_dir():
                out[rel] = f"dir {st.st_mode:o}"
            else:
                out[rel] = f"file {st.st_mode:o} {hashlib.sha256(path.read_bytes()).hexdigest()}"
    return out
