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

from pydantic import Field

from lifecycle.files import _toml
from lifecycle.files._model import KebabModel
from lifecycle.files.order import OrderEntry

__all__ = ["System", "SystemBuildpacks", "read"]




class SystemBuildpacks(KebabModel):
    """``[system.pre]`` or ``[system.post]``."""

    buildpacks: list[OrderEntry] = Field(default_factory=list)


class System(KebabModel):
    """``[system]``."""

    pre: SystemBuildpacks = Field(default_factory=SystemBuildpacks)
    post: SystemBuildpacks = Field(default_factory=SystemBuildpacks)


def read(path: Path) -> System | None:
    """Read ``system.toml``; None when it does not exist."""
    data = _toml.load(Path(path), missing_ok=True)
    if data is None:
        return None
    return _toml.validate(System, (data.get("system") if isinstance(data, dict) else None) or {}, path)
