"""``group.toml``: the buildpacks that passed detection, in build order.

Written by the detector, read by the restorer, builder and exporter::

    [[group]]
      id = "samples/hello"
      version = "0.0.1"
      api = "0.10"
      homepage = "https://..."   # omitted when empty

``[[group-extensions]]`` has the same keys (extensions are not run by this lifecycle, but the table
is kept when present).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from lifecycle.files import _toml
from lifecycle.files._model import KebabModel

__all__ = ["Group", "GroupEntry", "escape_id", "read", "write"]




def escape_id(buildpack_id: str) -> str:
    """The directory name of a buildpack: its ID with ``/`` replaced by ``_``."""
    return buildpack_id.replace("/", "_")


class GroupEntry(KebabModel):
    """One ``[[group]]`` element."""

    id: str
    version: str = ""
    api: str = ""
    homepage: str = ""

    @property
    def dir_name(self) -> str:
        """``<layers>/<dir_name>`` is this buildpack's layers directory."""
        return escape_id(self.id)

    def __str__(self) -> str:
        return f"{self.id}@{self.version}"

    def to_toml_dict(self) -> dict[str, Any]:
        """``id``, ``version``, then ``api`` and ``homepage`` when set."""
        out: dict[str, Any] = {"id": self.id, "version": self.version}
        if self.api:
            out["api"] = self.api
        if self.homepage:
            out["homepage"] = self.homepage
        return out


class Group(KebabModel):
    """The whole file."""

    group: list[GroupEntry] = Field(default_factory=list)
    group_extensions: list[GroupEntry] = Field(default_factory=list)

    def to_toml_dict(self) -> dict[str, Any]:
        """``[[group]]`` (and ``[[group-extensions]]`` when any)."""
        out: dict[str, Any] = {"group": [e.to_toml_dict() for e in self.group]}
        if self.group_extensions:
            out["group-extensions"] = [e.to_toml_dict() for e in self.group_extensions]
        return out


def read(path: Path) -> Group:
    """Read ``group.toml``; a missing or unparsable file is an input error (exit 3)."""
    data = _toml.load(Path(path))
    return _toml.validate(Group, data or {}, path)


def write(path: Path, group: Group) -> None:
    """Write ``group.toml`` atomically."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    _toml.write(Path(path), group.to_toml_dict())
