"""Locate the pinned Go tools (tests/tools/go-tools.txt) that `make tools` installs.

Tests and the benchmark find upstream's lifecycle, pack, oras, notation and crane only through here.
A missing tool fails the test (it never skips): the install step, not the test, installs it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

PINS = Path(__file__).resolve().parent.parent / "tools" / "go-tools.txt"


@dataclass(frozen=True)
class Pin:
    """One line of the pins file."""

    name: str
    module: str
    package: str
    version: str
    version_var: str


def pins() -> dict[str, Pin]:
    """The pins file, by tool name."""
    out: dict[str, Pin] = {}
    for line in PINS.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, module, package, version, version_var = line.split()
        out[name] = Pin(name, module, package, version, version_var)
    return out


def tools_dir() -> Path:
    """Where the install step puts the tools (``LIFECYCLE_TOOLS``, default /var/cache/lifecycle-tools)."""
    return Path(os.environ.get("LIFECYCLE_TOOLS", "/var/cache/lifecycle-tools"))


def tool_path(name: str) -> Path:
    """Where the pinned ``name`` lives once installed (it may be missing)."""
    pin = pins()[name]
    return tools_dir() / f"{name}-{pin.version}" / name


def go_tool(name: str) -> Path:
    """The installed pinned tool; fails the calling test when it is missing."""
    path = tool_path(name)
    if not os.access(path, os.X_OK):
        pytest.fail(f"{name} {pins()[name].version} is not installed at {path} (run `make install`)")
    return path


def upstream_phase(phase: str, bindir: Path) -> Path:
    """A ``phase`` argv[0] symlink in ``bindir`` to upstream's multi-call ``lifecycle`` binary."""
    bindir.mkdir(parents=True, exist_ok=True)
    link = bindir / phase
    if not link.exists():
        link.symlink_to(go_tool("lifecycle"))
    return link
