"""A buildpack's layers directory (``<layers>/<escaped id>``) as cache export and the restorer
list it."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

NOT_LAYERS = {"store", "launch", "build"}  # <name>.toml files that describe no layer


class GroupMember(Protocol):
    """What cache export and restore need of a group entry (``GroupEntry`` fits)."""

    @property
    def id(self) -> str: ...

    @property
    def version(self) -> str: ...


def layer_names(bp_dir: Path) -> list[str]:
    """Layers of a buildpack directory: subdirectories and ``<name>.toml`` files (not store,
    launch, build), sorted, as upstream's ``ReadLayersDir``."""
    if not bp_dir.is_dir():
        return []
    names: set[str] = set()
    for entry in bp_dir.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            names.add(entry.name)
        elif entry.name.endswith(".toml") and entry.name[:-5] not in NOT_LAYERS:
            names.add(entry.name[:-5])
    return sorted(names)
