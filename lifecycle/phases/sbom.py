"""The launch SBOM of the previous image: restored by the analyzer into ``<layers>/sbom/launch``
(upstream does this from Platform API 0.8), so buildpacks that reuse launch layers keep their
SBOM. Only layout images are read here; the layer is verified against its diffID before it
replaces anything, and a missing (sparse) or bad layer is only a warning."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import IO, Any

from lifecycle.archive import ArchiveError, HashingReader, extract_layer, remove_tree
from lifecycle.errors import ImageError
from lifecycle.image import model as m
from lifecycle.image.layout import Layout
from lifecycle.image.store import StoredImage

LIFECYCLE_LABEL = "io.buildpacks.lifecycle.metadata"


def restore_previous_sbom(image: StoredImage, layers: Path, logger: Any) -> bool:
    """Extract the previous image's SBOM layer into ``<layers>/sbom/launch``; True when restored."""
    try:
        label = json.loads(image.config.labels.get(LIFECYCLE_LABEL) or "{}")
    except ValueError:
        return False
    sbom = label.get("sbom") if isinstance(label, dict) else None
    sha = sbom.get("sha", "") if isinstance(sbom, dict) else ""
    layout = getattr(image, "layout", None)
    if not sha or not isinstance(layout, Layout) or image.manifest is None:
        return False
    if sha not in image.diff_ids:
        logger.warning(f"Not restoring SBOM from previous image: it has no layer {sha}")
        return False
    desc = image.manifest.layers[image.diff_ids.index(sha)]
    if not layout.has_blob(desc.digest):
        logger.warning(f"Not restoring SBOM from previous image: its layer {desc.digest} is not in the layout")
        return False
    prev_layers = _env(image, "CNB_LAYERS_DIR") or "/layers"
    target = layers / "sbom" / "launch"
    staging = layers / "sbom" / f".launch-restore-{os.getpid()}"
    logger.info("Restoring data for SBOM from previous image")
    try:
        with layout.open_blob(desc) as raw:
            stream: IO[bytes] = gzip.GzipFile(fileobj=raw) if _gzipped(desc) else raw  # type: ignore[assignment]
            reader = HashingReader(stream)
            extract_layer(reader, staging, f"{prev_layers.rstrip('/')}/sbom/launch")
            reader.drain()
        if reader.digest != sha:
            raise ArchiveError(f"layer has diffID {reader.digest}, want {sha}")
    except (ArchiveError, ImageError, OSError, EOFError) as exc:
        remove_tree(staging)
        logger.warning(f"Not restoring SBOM from previous image: {exc}")
        return False
    if target.exists():
        remove_tree(target)
    os.replace(staging, target)
    return True


def _gzipped(desc: m.Descriptor) -> bool:
    return desc.mediaType.endswith("gzip") or desc.mediaType == ""


def _env(image: StoredImage, key: str) -> str:
    for line in image.config.config.Env or []:
        name, _, value = line.partition("=")
        if name == key:
            return value
    return ""
