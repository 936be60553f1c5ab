"""``system.toml`` (Platform API >= 0.15): system buildpacks around every order group.

::

    [[system.pre.buildpacks]]
      id = "..."
      version = "..."
      optional = true
    [[system.post.buildpacks]]
      ...

Pre entries are prepended and post entries appended to every group, skipping IDs already in the
group. A missing file means no system buildpacks.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from lifecycle.files import _toml
from lifecycle.files.order import OrderEntry

__all__ = ["System", "SystemBuildpacks", "read"]


class _Kebab(BaseModel):
    model_config = ConfigDict(alias_generator=lambda s: s.replace("_", "-"), populate_by_name=True,
                              extra="ignore")


class SystemBuildpacks(_Kebab):
    """``[system.pre]`` or ``[system.post]``."""

    buildpacks: list[OrderEntry] = Field(default_factory=list)


class System(_Kebab):
    """``[system]``."""

    pre: SystemBuildpacks = Field(default_factory=SystemBuildpacks)
    post: SystemBuildpacks = Field(default_factory=SystemBuildpacks)


def read(path: Path) -> System | None:
    """Read ``system.toml``; None when it does not exist."""
    data = _toml.read(Path(path), missing_ok=True)
    if data is None:
        return None
    return System.model_validate(data.get("system") or {})
