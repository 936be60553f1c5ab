"""``<layers>/<buildpack>/<layer>.toml``: Layer Content Metadata.

Every supported Buildpack API (0.7-0.12) uses::

    [types]
      launch = true
      build = false
      cache = false
    [metadata]
      # anything the buildpack wants

A missing file or a missing ``[types]`` means all three flags are false. Top-level ``launch``,
``build`` or ``cache`` keys (the pre-0.6 form) are an error, as upstream.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lifecycle.errors import LifecycleError
from lifecycle.files import _toml

__all__ = ["LayerToml", "read_layer_toml", "write_layer_metadata"]


class LayerToml(BaseModel):
    """The three type flags and the buildpack's ``[metadata]``."""

    model_config = ConfigDict(extra="ignore")

    launch: bool = False
    build: bool = False
    cache: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def ignored(self) -> bool:
        """All three flags false: the builder renames the layer directory to ``<layer>.ignore``."""
        return not (self.launch or self.build or self.cache)


def read_layer_toml(path: Path) -> LayerToml:
    """Parse a layer's ``.toml``; a missing file gives all flags false.

    Raises :class:`LifecycleError` (exit code 1; callers re-wrap with their phase's code) for a file
    that is not TOML, has non-boolean types, or has the flags at the top level.
    """
    path = Path(path)
    data = _toml.load(path, missing_ok=True, error=LifecycleError)
    if data is None:
        return LayerToml()
    if any(key in data for key in ("launch", "build", "cache")):
        raise LifecycleError(f"the launch, cache and build flags should be in the types table of {path}")
    types = data.get("types") or {}
    metadata = data.get("metadata") or {}
    if not isinstance(types, dict) or not isinstance(metadata, dict):
        raise LifecycleError(f"failed to parse {path}: [types] and [metadata] must be tables")
    flags = {key: types.get(key, False) for key in ("launch", "build", "cache")}
    if not all(isinstance(v, bool) for v in flags.values()):
        raise LifecycleError(f"failed to parse {path}: the types flags must be booleans")
    return LayerToml(**flags, metadata=metadata)


def write_layer_metadata(path: Path, metadata: dict[str, Any]) -> None:
    """Write only ``[metadata]`` (no ``[types]``), as the restorer does upstream."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    _toml.write(Path(path), {"metadata": metadata})
