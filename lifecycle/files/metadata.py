"""``<layers>/config/metadata.toml``: what the builder learned, for the exporter and the launcher.

Upstream's shape (Platform API >= 0.10, so ``command`` is always an array)::

    buildpack-default-process-type = "web"      # omitted when there is none
    [[buildpacks]]   id, version, api, homepage (omitted when empty)
    [[extensions]]   id, version, api            # omitted when empty
    [[labels]]       key, value
    [[processes]]    type, command = [...], args = [...], direct, buildpack-id,
                     working-dir (omitted when empty), exec-env (omitted when empty)
    [[slices]]       paths = [...]

Reading accepts ``command`` as a string too (files written for Platform API < 0.10).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from lifecycle.files import _toml
from lifecycle.files._model import KebabModel

__all__ = ["BuildMetadata", "BuildpackRef", "Label", "Process", "Slice", "read", "write"]




class BuildpackRef(KebabModel):
    """One ``[[buildpacks]]`` (or ``[[extensions]]``) entry."""

    id: str
    version: str = ""
    api: str = ""
    homepage: str = ""

    def to_toml_dict(self) -> dict[str, Any]:
        """``id``, ``version``, ``api``, ``homepage`` (omitted when empty)."""
        out: dict[str, Any] = {"id": self.id, "version": self.version, "api": self.api}
        if self.homepage:
            out["homepage"] = self.homepage
        return out


class Label(KebabModel):
    """One ``[[labels]]`` entry: an image label a buildpack asked for."""

    key: str
    value: str = ""


class Slice(KebabModel):
    """One ``[[slices]]`` entry: globs relative to the app dir that make one app layer."""

    paths: list[str] = Field(default_factory=list)


class Process(KebabModel):
    """One ``[[processes]]`` entry."""

    type: str
    command: list[str] = Field(default_factory=list)
    args: list[str] = Field(default_factory=list)
    direct: bool = True
    buildpack_id: str = ""
    working_dir: str = ""
    exec_env: list[str] = Field(default_factory=list)

    @field_validator("command", mode="before")
    @classmethod
    def _command_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [value]
        return value

    def to_toml_dict(self) -> dict[str, Any]:
        """Upstream's key order; ``working-dir`` and ``exec-env`` only when set."""
        out: dict[str, Any] = {"type": self.type, "command": list(self.command), "args": list(self.args),
                               "direct": self.direct, "buildpack-id": self.buildpack_id}
        if self.working_dir:
            out["working-dir"] = self.working_dir
        if self.exec_env:
            out["exec-env"] = list(self.exec_env)
        return out


class BuildMetadata(KebabModel):
    """The whole file."""

    buildpacks: list[BuildpackRef] = Field(default_factory=list)
    extensions: list[BuildpackRef] = Field(default_factory=list)
    labels: list[Label] = Field(default_factory=list)
    processes: list[Process] = Field(default_factory=list)
    slices: list[Slice] = Field(default_factory=list)
    buildpack_default_process_type: str = ""

    def process(self, process_type: str) -> Process | None:
        """The process of type ``process_type``, if any."""
        return next((p for p in self.processes if p.type == process_type), None)

    def to_toml_dict(self) -> dict[str, Any]:
        """Serialise in upstream's order; empty tables are left out."""
        out: dict[str, Any] = {}
        if self.buildpack_default_process_type:
            out["buildpack-default-process-type"] = self.buildpack_default_process_type
        out["buildpacks"] = [b.to_toml_dict() for b in self.buildpacks]
        if self.extensions:
            out["extensions"] = [e.to_toml_dict() for e in self.extensions]
        if self.labels:
            out["labels"] = [{"key": lb.key, "value": lb.value} for lb in self.labels]
        if self.processes:
            out["processes"] = [p.to_toml_dict() for p in self.processes]
        if self.slices:
            out["slices"] = [{"paths": list(s.paths)} for s in self.slices]
        return out


def read(path: Path) -> BuildMetadata:
    """Read ``metadata.toml``; a missing or unparsable file is an input error (exit 3)."""
    data = _toml.load(Path(path))
    return _toml.validate(BuildMetadata, data or {}, path)


def write(path: Path, metadata: BuildMetadata) -> None:
    """Write ``metadata.toml`` atomically (creating ``<layers>/config``)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    _toml.write(Path(path), metadata.to_toml_dict())
