"""``report.toml``: what the exporter saved (``[image]`` tags, digest, manifest-size)."""

from __future__ import annotations

from pathlib import Path

from lifecycle.files import _toml


def write(path: Path, *, tags: list[str], digest: str = "", manifest_size: int = 0, image_id: str = "") -> None:
    """Write ``report.toml``; empty values are omitted as upstream does."""
    image: dict[str, object] = {"tags": tags}
    if image_id:
        image["image-id"] = image_id
    if digest:
        image["digest"] = digest
    if manifest_size:
        image["manifest-size"] = manifest_size
    _toml.write(path, {"image": image})
