"""Write throw-away buildpacks, order.toml and friends for detector/builder tests."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import tomlkit


def write_buildpack(root: Path, bp_id: str, version: str = "1.0", *, api: str = "0.10",
                    detect: str | None = "exit 0", build: str | None = "exit 0", clear_env: bool = False,
                    extra_toml: str = "") -> Path:
    """``<root>/<id with _>/<version>/`` with buildpack.toml and sh ``bin/detect``/``bin/build``."""
    bp_dir = root / bp_id.replace("/", "_") / version
    (bp_dir / "bin").mkdir(parents=True, exist_ok=True)
    toml = (f'api = "{api}"\n[buildpack]\nid = "{bp_id}"\nversion = "{version}"\nname = "{bp_id}"\n'
            f"clear-env = {'true' if clear_env else 'false'}\n{extra_toml}\n")
    (bp_dir / "buildpack.toml").write_text(toml)
    for name, body in (("detect", detect), ("build", build)):
        if body is None:
            continue
        exe = bp_dir / "bin" / name
        exe.write_text(f"#!/bin/sh\nset -eu\n{body}\n")
        exe.chmod(0o755)
    return bp_dir


def write_order(path: Path, *groups: list[tuple[str, str] | tuple[str, str, bool]]) -> Path:
    """``order.toml`` with one ``[[order]]`` per group of (id, version[, optional])."""
    doc = {"order": [{"group": [{"id": e[0], "version": e[1], **({"optional": True} if len(e) > 2 and e[2]
                                                                 else {})} for e in g]} for g in groups]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomlkit.dumps(doc))
    return path


def write_group(path: Path, *entries: tuple[str, str, str]) -> Path:
    """``group.toml`` from (id, version, api)."""
    doc = {"group": [{"id": i, "version": v, "api": a} for i, v, a in entries]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomlkit.dumps(doc))
    return path


@dataclass
class Workspace:
    """The directories one detector/builder run uses."""

    root: Path

    @property
    def app(self) -> Path:
        return self.root / "app"

    @property
    def buildpacks(self) -> Path:
        return self.root / "buildpacks"

    @property
    def layers(self) -> Path:
        return self.root / "layers"

    @property
    def platform(self) -> Path:
        return self.root / "platform"

    @property
    def order(self) -> Path:
        return self.root / "order.toml"

    def make(self) -> Workspace:
        for d in (self.app, self.buildpacks, self.layers, self.platform):
            d.mkdir(parents=True, exist_ok=True)
        return self

    def detector_args(self, *extra: str) -> list[str]:
        return ["-app", str(self.app), "-buildpacks", str(self.buildpacks), "-layers", str(self.layers),
                "-platform", str(self.platform), "-order", str(self.order),
                "-system", str(self.root / "system.toml"), *extra]

    def builder_args(self, *extra: str) -> list[str]:
        return ["-app", str(self.app), "-buildpacks", str(self.buildpacks), "-layers", str(self.layers),
                "-platform", str(self.platform), *extra]

    def open_up(self) -> None:
        """Let any user traverse and read the tree (for the dropped-privilege tests)."""
        for dirpath, _dirnames, filenames in os.walk(self.root):
            os.chmod(dirpath, 0o755)
            for name in filenames:
                path = os.path.join(dirpath, name)
                os.chmod(path, 0o755 if os.access(path, os.X_OK) else 0o644)
