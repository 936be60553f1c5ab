"""``run.toml``: the run images a builder offers (``[[images]]`` with ``image`` and ``mirrors``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lifecycle.files import _toml


def read_images(path: Path) -> list[dict[str, Any]]:
    """The ``[[images]]`` entries; a missing file has none."""
    data = _toml.load(path, missing_ok=True) or {}
    images = data.get("images", [])
    return [i for i in images if isinstance(i, dict) and i.get("image")]
