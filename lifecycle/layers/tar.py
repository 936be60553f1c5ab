"""Reproducible tar streams (upstream-lifecycle.md §8.2).

Entry names are absolute (``/layers/<bp>/<layer>/...``), parent directories come first with
their real owners, everything under the source gets ``-uid``/``-gid``, every mtime is
1980-01-01T00:00:01Z, uname/gname are empty, walks are lexical, modes and symlink targets are
kept, sockets are skipped. Bytes go straight to a sink; a layer is never held in memory.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

NORMALIZED_MTIME = 315532801  # 1980-01-01T00:00:01Z
BLOCK = 512
CHUNK = 1 << 20


class Sink(Protocol):
    """Anything with ``write(bytes)``."""

    def write(self, data: bytes, /) -> int | None:
        """Consume bytes."""
        ...


@dataclass(frozen=True)
class Entry:
    """One tar entry: ``name`` is the absolute path in the image."""

    name: str
    kind: str  # "dir" | "file" | "symlink"
    mode: int
    uid: int
    gid: int
    source: Path | None = None
    size: int = 0
    linkname: str = ""


def parent_entries(image_path: str, on_disk: Path | None = None) -> list[Entry]:
    """Entries for each parent of ``image_path`` (``/a/b/c`` -> ``/a``, ``/a/b``).

    Parents keep the owner and mode of the matching directory on disk when there is one
    (upstream's rule), else root 0755.
    """
    parts = PurePosixPath(image_path).parts[1:-1]
    out: list[Entry] = []
    disk_parents: list[Path | None] = []
    if on_disk is not None:
        disk = on_disk.parent
        for _ in parts:
            disk_parents.insert(0, disk)
            disk = disk.parent
    current = ""
    for i, part in enumerate(parts):
        current += "/" + part
        src = disk_parents[i] if disk_parents else None
        if src is not None and src.is_dir():
            st = src.stat()
            out.append(Entry(current, "dir", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid))
        else:
            out.append(Entry(current, "dir", 0o755, 0, 0))
    return out


def dir_entries(src: Path, image_path: str, uid: int, gid: int, *, include_root: bool = True,
                skip: Iterable[str] = ()) -> Iterator[Entry]:
    """``src`` and everything below it, lexically sorted, named under ``image_path``.

    ``skip`` lists paths relative to ``src`` that are left out (e.g. files of earlier slices).
    """
    skipped = set(skip)
    if include_root:
        yield _entry(src, image_path, uid, gid)

    def walk(directory: Path, name: str, rel: str) -> Iterator[Entry]:
        try:
            children = sorted(os.listdir(directory))
        except OSError:
            return
        for child in children:
            path = directory / child
            child_rel = f"{rel}/{child}" if rel else child
            if child_rel in skipped:
                continue
            entry = _entry(path, f"{name}/{child}", uid, gid)
            if entry.kind == "skip":
                continue
            yield entry
            if entry.kind == "dir":
                yield from walk(path, f"{name}/{child}", child_rel)

    yield from walk(src, image_path.rstrip("/"), "")


def _entry(path: Path, name: str, uid: int, gid: int) -> Entry:
    st = os.lstat(path)
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        return Entry(name, "dir", mode, uid, gid)
    if stat.S_ISLNK(st.st_mode):
        return Entry(name, "symlink", mode, uid, gid, linkname=os.readlink(path))
    if stat.S_ISREG(st.st_mode):
        return Entry(name, "file", mode, uid, gid, source=path, size=st.st_size)
    return Entry(name, "skip", mode, uid, gid)  # sockets, fifos, devices: not part of layers


def _header(entry: Entry) -> bytes:
    info = tarfile.TarInfo(entry.name)
    info.mode = entry.mode
    info.uid, info.gid = entry.uid, entry.gid
    info.uname = info.gname = ""
    info.mtime = NORMALIZED_MTIME
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
    elif entry.kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = entry.linkname
    else:
        info.type = tarfile.REGTYPE
        info.size = entry.size
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def write_tar(entries: Iterable[Entry], sink: Sink) -> None:
    """Stream ``entries`` as a tar into ``sink`` (Go-style end: two zero blocks)."""
    for entry in entries:
        sink.write(_header(entry))
        if entry.kind != "file" or entry.source is None:
            continue
        remaining = entry.size
        with open(entry.source, "rb") as f:
            while remaining > 0:
                chunk = f.read(min(CHUNK, remaining))
                if not chunk:
                    raise OSError(f"{entry.source} shrank while being archived")
                sink.write(chunk)
                remaining -= len(chunk)
        pad = (-entry.size) % BLOCK
        if pad:
            sink.write(b"\0" * pad)
    sink.write(b"\0" * (2 * BLOCK))


class HashingSink:
    """Passes bytes through to ``inner`` while computing their sha256 (the diffID)."""

    def __init__(self, inner: Sink | None = None) -> None:
        self.inner = inner
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes, /) -> int:
        """Hash and forward."""
        self.hash.update(data)
        self.size += len(data)
        if self.inner is not None:
            self.inner.write(data)
        return len(data)

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of everything written."""
        return "sha256:" + self.hash.hexdigest()


def write_layer_tar(src_dir: Path, out: BinaryIO, *, uid: int, gid: int, image_path: str | None = None) -> str:
    """Write the layer tar of ``src_dir`` (with its parents) to ``out``; return its diffID.

    ``image_path`` is where the directory appears in the image (default: its absolute path).
    """
    name = image_path or str(Path(os.path.abspath(src_dir)))
    sink = HashingSink(out)
    entries = [*parent_entries(name, Path(os.path.abspath(src_dir)))]
    write_tar([*entries, *dir_entries(src_dir, name, uid, gid)], sink)
    return sink.digest
