"""Shared helpers for cache, archive and restorer tests: a recording logger, tar builders."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class Recorder:
    """A logger that records ``(level, message)``; key/value context is kept too."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def _log(self, level: str, msg: str, **kw: Any) -> None:
        self.lines.append((level, str(msg)))

    def debug(self, msg: str, **kw: Any) -> None:
        self._log("debug", msg, **kw)

    def info(self, msg: str, **kw: Any) -> None:
        self._log("info", msg, **kw)

    def warning(self, msg: str, **kw: Any) -> None:
        self._log("warning", msg, **kw)

    def error(self, msg: str, **kw: Any) -> None:
        self._log("error", msg, **kw)

    def of(self, level: str) -> list[str]:
        return [m for lvl, m in self.lines if lvl == level]

    @property
    def warnings(self) -> list[str]:
        return self.of("warning")

    @property
    def infos(self) -> list[str]:
        return self.of("info")


@dataclass(frozen=True)
class Group:
    """A stand-in for a group entry (``.id``, ``.version``)."""

    id: str
    version: str = "1.0.0"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_bytes(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    """A tar (PAX) of hand-made members; file data given as bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def d(name: str, mode: int = 0o755) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    info.mtime = 315532801
    return info, None


def f(name: str, data: bytes = b"data", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    info.mtime = 315532801
    return info, data


def sym(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    info.mode = 0o777
    return info, None


def hard(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE
    info.linkname = target
    info.mode = 0o644
    return info, None


def special(name: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o644
    info.devmajor, info.devminor = 1, 3
    return info, None


def snapshot(root: Path, *, exclude: Path | None = None) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` (not following links) with (mode, size), except under ``exclude``."""
    out: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if exclude is not None and (path == exclude or exclude in path.parents):
                continue
            st = os.lstat(path)
            out[str(path.relative_to(root))] = (st.st_mode, st.st_size)
    return out


def write_layer(layers: Path, bp_id: str, name: str, *, launch: bool = False, build: bool = False,
                cache: bool = False, files: dict[str, str] | None = None, data: str = "v1") -> Path:
    """A buildpack layer as the builder leaves it: ``<name>.toml`` with types and a directory."""
    bp_dir = layers / bp_id.replace("/", "_")
    bp_dir.mkdir(parents=True, exist_ok=True)
    (bp_dir / f"{name}.toml").write_text(
        f"[types]\nlaunch = {str(launch).lower()}\nbuild = {str(build).lower()}\n"
        f"cache = {str(cache).lower()}\n\n[metadata]\nversion = \"{data}\"\n")
    layer = bp_dir / name
    for rel, text in (files if files is not None else {"bin/tool": f"tool {name} {data}"}).items():
        path = layer / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    layer.mkdir(parents=True, exist_ok=True)
    return layer
