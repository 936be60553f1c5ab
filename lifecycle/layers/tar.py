"""Reproducible tar streams (upstream-lifecycle.md §8.2).

Entry names are absolute (``/layers/<bp>/<layer>/...``), parent directories come first with
their real owners, everything under the source gets ``-uid``/``-gid``, every mtime is
1980-01-01T00:00:01Z, uname/gname are empty, walks are lexical, modes and symlink targets are
kept, sockets are skipped. Bytes go straight to a sink; a layer is never held in memory.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import posixpath
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol, runtime_checkable

NORMALIZED_MTIME = 315532801  # 1980-01-01T00:00:01Z
BLOCK = 512
CHUNK = 1 << 17  # a file is read in pieces of this size


class Sink(Protocol):
    """Anything with ``write(bytes)``."""

    def write(self, data: bytes, /) -> int | None:
        """Consume bytes."""
        ...


@runtime_checkable
class FileSink(Sink, Protocol):
    """A sink that reads a file's bytes itself, into memory it reuses: the same as ``write`` of
    those bytes, without a new buffer for every chunk."""

    def write_file(self, fd: int, size: int, source: str | Path) -> None:
        """Consume exactly ``size`` bytes read from ``fd``."""
        ...


@runtime_checkable
class Reserving(Sink, Protocol):
    """A sink whose buffer a producer may fill in place: ``reserve`` room, fill it, ``commit``."""

    def reserve(self, size: int) -> memoryview:
        """Writable room for the next ``size`` bytes; valid until ``commit``."""
        ...

    def commit(self, size: int) -> None:
        """The reserved bytes are filled: the same as ``write`` of them."""
        ...


@dataclass(frozen=True)
class Entry:
    """One tar entry: ``name`` is the absolute path in the image."""

    name: str
    kind: str  # "dir" | "file" | "symlink"
    mode: int
    uid: int
    gid: int
    source: str | Path | None = None
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
        yield path_entry(src, image_path, uid, gid)

    def walk(directory: str, name: str, rel: str) -> Iterator[Entry]:
        # scandir's entries cache their lstat: one syscall per name, no Path objects.
        try:
            with os.scandir(directory) as listing:
                children = sorted(listing, key=_name_bytes)
        except OSError:
            return
        for child in children:
            child_rel = f"{rel}/{child.name}" if rel else child.name
            if child_rel in skipped:
                continue
            entry = _entry(child.path, f"{name}/{child.name}", child.stat(follow_symlinks=False), uid, gid)
            if entry.kind == "skip":
                continue
            yield entry
            if entry.kind == "dir":
                yield from walk(child.path, f"{name}/{child.name}", child_rel)

    yield from walk(os.fspath(src), image_path.rstrip("/"), "")


def _name_bytes(entry: os.DirEntry[str]) -> bytes:
    return os.fsencode(entry.name)


def path_entry(path: str | Path, name: str, uid: int, gid: int) -> Entry:
    """The entry for ``path`` (not followed when a symlink) named ``name``; kind "skip" for sockets,
    fifos and devices."""
    return _entry(path, name, os.lstat(path), uid, gid)


def _entry(path: str | Path, name: str, st: os.stat_result, uid: int, gid: int) -> Entry:
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISREG(st.st_mode):
        return Entry(name, "file", mode, uid, gid, source=path, size=st.st_size)
    if stat.S_ISDIR(st.st_mode):
        return Entry(name, "dir", mode, uid, gid)
    if stat.S_ISLNK(st.st_mode):
        return Entry(name, "symlink", mode, uid, gid, linkname=os.readlink(path))
    return Entry(name, "skip", mode, uid, gid)  # sockets, fifos, devices: not part of layers


# Header bytes follow Go's archive/tar (the writer upstream's lifecycle uses), so a layer built here
# has the same bytes, and so the same diffID, as upstream's: USTAR when the entry fits (long names
# split into prefix/name), else PAX with Go's record order and header name; numeric fields are
# zero-padded octal ending in NUL (device numbers too); directory names carry no trailing slash.
_NAME, _PREFIX = 100, 155
_TYPES = {"dir": b"5", "symlink": b"2", "file": b"0"}


def _octal(value: int, width: int) -> bytes:
    """Go's formatOctal: zero-padded digits then NUL; 0 when the value does not fit."""
    if not 0 <= value < 8 ** (width - 1):
        value = 0
    return _field(format(value, "o").zfill(width - 1).encode(), width)


def _field(data: bytes, width: int) -> bytes:
    """Go's formatString: truncated to the field, NUL-padded; a truncated value ending in ``/``
    gets a NUL where its trailing slashes start."""
    out = data[:width].ljust(width, b"\0")
    if len(data) > width and out.endswith(b"/"):
        n = len(data[:width - 1].rstrip(b"/"))
        out = out[:n] + b"\0" + out[n + 1:]
    return out


def _ascii(data: bytes) -> bytes:
    """Go's toASCII: drops NUL and every non-ASCII character."""
    return bytes(b for b in data.decode("utf-8", "replace").encode("ascii", "ignore") if b)


def _split_ustar(name: bytes) -> tuple[bytes, bytes] | None:
    """Go's splitUSTARPath: (prefix, name) for a long ASCII name, or None."""
    if len(name) <= _NAME or not name.isascii():
        return None
    length = len(name)
    if length > _PREFIX + 1:
        length = _PREFIX + 1
    elif name[length - 1:length] == b"/":
        length -= 1
    i = name.rfind(b"/", 0, length)
    suffix = len(name) - i - 1
    if i <= 0 or suffix > _NAME or suffix == 0 or i > _PREFIX:
        return None
    return name[:i], name[i + 1:]


def _pax_record(key: str, value: bytes) -> bytes:
    """Go's formatPAXRecord: ``<len> <key>=<value>\\n`` where len counts itself."""
    body = b" " + key.encode() + b"=" + value + b"\n"
    size = len(body) + len(str(len(body)))
    if len(str(size)) + len(body) != size:
        size = len(str(size)) + len(body)
    return str(size).encode() + body


def _block(name: bytes, mode: int, uid: int, gid: int, size: int, typeflag: bytes, linkname: bytes,
           prefix: bytes = b"", devices: bool = True) -> bytes:
    head = (_field(name, _NAME) + _octal(mode, 8) + _octal(uid, 8) + _octal(gid, 8) + _octal(size, 12)
            + _octal(NORMALIZED_MTIME if devices else 0, 12) + b" " * 8 + typeflag + _field(linkname, _NAME)
            + b"ustar\x0000" + b"\0" * 64
            + (_octal(0, 8) + _octal(0, 8) if devices else b"\0" * 16) + _field(prefix, _PREFIX))
    head = head.ljust(BLOCK, b"\0")
    checksum = format(sum(head), "o").zfill(6).encode() + b"\0 "
    return head[:148] + checksum + head[156:]


# The common case (short ASCII names and link targets, small IDs and sizes) needs no PAX, no prefix
# split and no range checks: its block is formatted in one go, byte-identical to _block's.
_MAX8, _MAX12 = 8 ** 7, 8 ** 11
_MTIME_FIELD = _octal(NORMALIZED_MTIME, 12)
_TAIL = b"ustar\x0000" + b"\0" * 64 + _octal(0, 8) * 2 + b"\0" * (_PREFIX + 12)
_CONSTANT_SUM = sum(_MTIME_FIELD) + sum(_TAIL) + 8 * ord(" ")  # the checksum field counts as spaces


def _plain_block(name: bytes, mode: int, uid: int, gid: int, size: int, typeflag: bytes, linkname: bytes) -> bytes:
    numbers = b"%07o\0%07o\0%07o\0%011o\0" % (mode, uid, gid, size)
    checksum = sum(name) + sum(numbers) + typeflag[0] + sum(linkname) + _CONSTANT_SUM
    return b"".join((name.ljust(_NAME, b"\0"), numbers, _MTIME_FIELD, b"%06o\0 " % checksum, typeflag,
                     linkname.ljust(_NAME, b"\0"), _TAIL))


def _header(entry: Entry) -> bytes:
    name = os.fsencode(entry.name)
    linkname = os.fsencode(entry.linkname) if entry.kind == "symlink" else b""
    size = entry.size if entry.kind == "file" else 0
    typeflag = _TYPES[entry.kind]
    if (len(name) <= _NAME and len(linkname) <= _NAME and name.isascii() and linkname.isascii()
            and 0 <= entry.uid < _MAX8 and 0 <= entry.gid < _MAX8 and 0 <= size < _MAX12
            and 0 <= entry.mode < _MAX8):
        return _plain_block(name, entry.mode, entry.uid, entry.gid, size, typeflag, linkname)
    return _general_header(entry, name, linkname, size, typeflag)


def _general_header(entry: Entry, name: bytes, linkname: bytes, size: int, typeflag: bytes) -> bytes:
    # Go records every field USTAR cannot hold as-is, then writes USTAR if it still can (a long
    # name split into prefix/name), else PAX with all those records.
    pax: dict[str, bytes] = {}
    ustar = True
    split = None
    if len(name) > _NAME or not name.isascii():
        pax["path"] = name
        split = _split_ustar(name)
        ustar = split is not None
    if len(linkname) > _NAME or not linkname.isascii():
        pax["linkpath"] = linkname
        ustar = False
    for key, value, width in (("uid", entry.uid, 8), ("gid", entry.gid, 8), ("size", size, 12)):
        if not 0 <= value < 8 ** (width - 1):
            pax[key] = str(value).encode()
            ustar = False
    if ustar:
        if split is not None:
            return _block(split[1], entry.mode, entry.uid, entry.gid, size, typeflag, linkname, split[0])
        return _block(name, entry.mode, entry.uid, entry.gid, size, typeflag, linkname)
    records = b"".join(_pax_record(k, pax[k]) for k in sorted(pax))
    directory, _, base = name.rpartition(b"/")
    pax_name = posixpath.normpath(posixpath.join(directory + b"/", b"PaxHeaders.0", base))
    pax_name = _ascii(pax_name)[:_NAME].rstrip(b"/")
    out = _block(pax_name, 0, 0, 0, len(records), b"x", b"", devices=False)
    out += records + b"\0" * ((-len(records)) % BLOCK)
    return out + _block(_ascii(name), entry.mode, entry.uid, entry.gid, size, typeflag, _ascii(linkname))


_ZEROS = bytes(BLOCK)


def write_tar(entries: Iterable[Entry], sink: Sink) -> None:
    """Stream ``entries`` as a tar into ``sink`` (Go-style end: two zero blocks).

    The sink sees a header, then a file's bytes in chunks of at most ``CHUNK`` (read by the sink
    itself when it is a ``FileSink``), then its padding. Nothing downstream depends on where the
    writes split: the compressor cuts the stream into pieces of its own (``layers.blob``).
    """
    write = sink.write
    write_file = sink.write_file if isinstance(sink, FileSink) else None
    for entry in entries:
        write(_header(entry))
        if entry.kind != "file" or entry.source is None:
            continue
        remaining = entry.size
        fd = os.open(entry.source, os.O_RDONLY)  # raw reads: no buffer object, no isatty probe
        try:
            while remaining > 0:
                size = min(CHUNK, remaining)
                if write_file is not None:
                    write_file(fd, size, entry.source)
                else:
                    data = bytearray(size)
                    read_into(fd, memoryview(data), entry.source)
                    write(data)  # type: ignore[arg-type]  # sinks take any buffer
                    del data  # freed before the next read allocates its own
                remaining -= size
        finally:
            os.close(fd)
        pad = (-entry.size) % BLOCK
        if pad:
            write(_ZEROS[:pad])
    write(_ZEROS * 2)


def read_into(fd: int, view: memoryview, source: str | Path) -> None:
    """Fill ``view`` from ``fd``; a file that ends before it is full shrank while being read."""
    got, size = 0, len(view)
    while got < size:
        n = os.readv(fd, [view[got:]])
        if n == 0:
            raise OSError(f"{source} shrank while being archived")
        got += n


class HashingSink:
    """Passes bytes through to ``inner`` while computing their sha256 (the diffID).

    File bytes are read straight into ``inner``'s buffer when it lends one (``Reserving``), or
    else into one scratch buffer of this sink's: no new buffer per chunk. Buffers are anonymous
    mappings: only the pages a chunk fills are ever touched, and they go back to the system
    whole, not into the C heap, where a megabyte-sized block freed between smaller ones stays."""

    def __init__(self, inner: Sink | None = None) -> None:
        self.inner = inner
        self.hash = hashlib.sha256()
        self.size = 0
        self._lender = inner if isinstance(inner, Reserving) else None  # checked once: a slow check
        self._scratch: mmap.mmap | None = None

    def write(self, data: bytes, /) -> int:
        """Hash and forward."""
        self.hash.update(data)
        self.size += len(data)
        if self.inner is not None:
            self.inner.write(data)
        return len(data)

    def write_file(self, fd: int, size: int, source: str | Path) -> None:
        """Read ``size`` bytes of ``fd`` into the inner sink's buffer (or this sink's), hash and
        forward them."""
        lender = self._lender
        if lender is not None:
            with lender.reserve(size) as view:
                read_into(fd, view, source)
                self.hash.update(view)
            self.size += size
            lender.commit(size)
            return
        inner = self.inner
        if self._scratch is None or len(self._scratch) < size:
            self._scratch = mmap.mmap(-1, max(size, CHUNK))  # untouched pages cost nothing
        with memoryview(self._scratch)[:size] as view:
            read_into(fd, view, source)
            self.hash.update(view)
            self.size += size
            if inner is not None:
                inner.write(view)  # type: ignore[arg-type]  # file-likes take any buffer

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
