"""Cache metadata: the JSON upstream keeps as ``io.buildpacks.lifecycle.cache.metadata``.

A file of that name in a volume cache's ``committed/`` directory, or a config label of a cache
image. Shape (upstream's Go field order)::

    {"sbom": {"sha": "<diffID or empty>"},
     "buildpacks": [{"key": "<bp id>", "version": "<bp version>",
                     "layers": {"<name>": {"sha": "...", "data": {...}, "build": false,
                                           "launch": false, "cache": true}}}]}
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lifecycle.image.model import loads, validation_text

METADATA_LABEL = "io.buildpacks.lifecycle.cache.metadata"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class LayerMetadata(_Model):
    """One cached layer: its diffID, the buildpack's data and its types."""

    sha: str = ""
    data: Any = None
    build: bool = False
    launch: bool = False
    cache: bool = False


class Sha(_Model):
    """``{"sha": ...}``."""

    sha: str = ""


class BuildpackLayers(_Model):
    """One buildpack's cached layers."""

    key: str = ""
    version: str = ""
    layers: dict[str, LayerMetadata] = Field(default_factory=dict)


class CacheMetadata(_Model):
    """The whole metadata document."""

    sbom: Sha = Field(default_factory=Sha)
    buildpacks: list[BuildpackLayers] = Field(default_factory=list)

    def for_buildpack(self, bp_id: str) -> BuildpackLayers:
        """The entry of ``bp_id``; an empty one when the cache has none."""
        for entry in self.buildpacks:
            if entry.key == bp_id:
                return entry
        return BuildpackLayers(key=bp_id)

    def to_json(self) -> bytes:
        """Compact JSON in upstream's key order."""
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (every per-layer key present, ``data`` may be null)."""
        return {
            "sbom": {"sha": self.sbom.sha},
            "buildpacks": [
                {"key": bp.key, "version": bp.version,
                 "layers": {name: {"sha": lm.sha, "data": lm.data, "build": lm.build,
                                   "launch": lm.launch, "cache": lm.cache}
                            for name, lm in bp.layers.items()}}
                for bp in self.buildpacks
            ],
        }


def parse(raw: bytes | str) -> CacheMetadata:
    """Parse metadata JSON; raise ValueError when it is not valid JSON of the right shape."""
    try:
        data = loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"cache metadata is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("cache metadata is not a JSON object")
    if data.get("buildpacks") is None:
        data["buildpacks"] = []  # Go writes a nil slice as null
    if data.get("sbom") is None:
        data["sbom"] = {}
    for bp in data["buildpacks"] if isinstance(data["buildpacks"], list) else []:
        if isinstance(bp, dict) and bp.get("layers") is None:
            bp["layers"] = {}
    try:
        return CacheMetadata.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"cache metadata is not valid: {validation_text(exc)}") from None
