"""``analyzed.toml``: written by the analyzer, read by detector, restorer, builder and exporter.

Layer metadata is kept in upstream's TOML shape (``metadata`` for the buildpack data, kebab-case
keys); the image label uses JSON shape (``data``, ``runImage``/``topLayer``). The two converters
below are the only place that knows the difference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from lifecycle.files import _toml
from lifecycle.files._model import KebabModel


class Distro(KebabModel):
    """``[run-image.target.distro]``."""

    name: str = ""
    version: str = ""


class Target(KebabModel):
    """``[run-image.target]``: what the run image runs on."""

    id: str | None = None
    os: str = ""
    arch: str = ""
    arch_variant: str | None = None
    distro: Distro | None = None


class RunImage(KebabModel):
    """``[run-image]``."""

    reference: str = ""
    image: str | None = None
    extend: bool | None = None
    target: Target | None = None


class PreviousImage(KebabModel):
    """``[image]``: the previous app image; ``reference`` is empty when none was found."""

    reference: str = ""


class Analyzed(KebabModel):
    """The whole file."""

    previous_image: PreviousImage | None = Field(default=None, alias="image")
    metadata: dict[str, Any] = Field(default_factory=dict)
    run_image: RunImage | None = None

    def to_toml_dict(self) -> dict[str, Any]:
        """Tables in upstream's order: image, metadata, run-image."""
        out: dict[str, Any] = {}
        if self.previous_image is not None:
            out["image"] = self.previous_image.model_dump(by_alias=True, exclude_none=True)
        out["metadata"] = self.metadata
        if self.run_image is not None:
            out["run-image"] = self.run_image.model_dump(by_alias=True, exclude_none=True)
        return out


def read(path: Path) -> Analyzed | None:
    """Read ``analyzed.toml``; None when the file does not exist."""
    data = _toml.load(path, missing_ok=True)
    if data is None:
        return None
    return _toml.validate(Analyzed, data, path)


def write(path: Path, analyzed: Analyzed) -> None:
    """Write ``analyzed.toml`` atomically."""
    _toml.write(path, analyzed.to_toml_dict())


_JSON_TO_TOML = {"runImage": "run-image", "topLayer": "top-layer"}
_TOML_TO_JSON = {v: k for k, v in _JSON_TO_TOML.items()}


def _rename(value: Any, names: dict[str, str], data_from: str, data_to: str) -> Any:
    """Rename the label's own keys; buildpack-owned data (layer data, store) is kept verbatim."""
    if isinstance(value, list):
        return [_rename(v, names, data_from, data_to) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key == "layers" and isinstance(item, dict):
            # Per-layer tables: only their data key changes name (JSON "data", TOML "metadata").
            out[key] = {name: ({(data_to if k == data_from else k): v for k, v in layer.items()}
                               if isinstance(layer, dict) else layer)
                        for name, layer in item.items()}
        elif key == "store":
            out[key] = item
        else:
            out[str(names.get(key, key))] = _rename(item, names, data_from, data_to)
    return out


def label_to_toml(label: dict[str, Any]) -> dict[str, Any]:
    """``io.buildpacks.lifecycle.metadata`` JSON -> ``[metadata]`` of analyzed.toml."""
    return _toml.strip_none(_rename(label, _JSON_TO_TOML, "data", "metadata"))  # type: ignore[no-any-return]


def toml_to_label(metadata: dict[str, Any]) -> dict[str, Any]:
    """``[metadata]`` of analyzed.toml -> the JSON shape of the label."""
    return _rename(metadata, _TOML_TO_JSON, "metadata", "data")  # type: ignore[no-any-return]
