"""Safe extraction: good layer tars come out right; hostile ones are refused, nothing escapes."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from lifecycle.archive import ArchiveError, HashingReader, extract_layer, remove_tree
from tests.cache.helpers import d, f, hard, sha256, snapshot, special, sym, tar_bytes


@pytest.fixture
def box(tmp_path: Path) -> tuple[Path, Path, str]:
    """(sandbox root, destination layer dir, tar prefix): dest is <root>/layers/bp/layer."""
    root = tmp_path / "sandbox"
    dest = root / "layers" / "bp" / "layer"
    (root / "layers" / "bp").mkdir(parents=True)
    (root / "outside.txt").write_text("precious")
    return root, dest, str(dest)


class OneWay:
    """A non-seekable stream (proves extraction streams)."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._buf.read(n)


def test_good_layer(box: tuple[Path, Path, str]) -> None:
    root, dest, prefix = box
    layers = str(root / "layers")
    data = tar_bytes(
        d(layers), d(f"{layers}/bp"), d(prefix, 0o750),
        d(f"{prefix}/bin"), f(f"{prefix}/bin/tool", b"#!/bin/sh\necho hi\n", 0o755),
        sym(f"{prefix}/bin/rel", "tool"), sym(f"{prefix}/abs", f"{prefix}/bin/tool"),
        hard(f"{prefix}/bin/hard", f"{prefix}/bin/tool"),
        f(f"{prefix}/deep/no/parent/entries.txt", b"x"),
        d(f"{prefix}/ro", 0o555), f(f"{prefix}/ro/file", b"r", 0o444),
        f(f"{prefix}/suid", b"s", 0o4755),
    )
    extract_layer(OneWay(data), dest, prefix, owner=(1234, 2345))
    assert (dest / "bin" / "tool").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert stat.S_IMODE(os.stat(dest / "bin" / "tool").st_mode) == 0o755
    assert os.readlink(dest / "bin" / "rel") == "tool"
    assert os.readlink(dest / "abs") == f"{prefix}/bin/tool"
    assert os.stat(dest / "bin" / "hard").st_ino == os.stat(dest / "bin" / "tool").st_ino
    assert (dest / "deep" / "no" / "parent" / "entries.txt").read_bytes() == b"x"
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o750
    assert stat.S_IMODE(os.stat(dest / "ro").st_mode) == 0o555
    assert stat.S_IMODE(os.stat(dest / "suid").st_mode) == 0o755  # set-uid dropped
    assert os.stat(dest / "bin" / "tool").st_mtime == 315532801
    if os.geteuid() == 0:
        for path in (dest, dest / "bin" / "tool", dest / "deep" / "no"):
            st = os.lstat(path)
            assert (st.st_uid, st.st_gid) == (1234, 2345)
        assert os.lstat(dest / "bin" / "rel").st_uid == 1234
    remove_tree(dest)
    assert not dest.exists()


def test_relative_names_map_to_the_same_prefix(box: tuple[Path, Path, str]) -> None:
    _root, dest, prefix = box
    extract_layer(io.BytesIO(tar_bytes(f(f"{prefix.lstrip('/')}/a.txt", b"a"))), dest, prefix)
    assert (dest / "a.txt").read_bytes() == b"a"


HOSTILE: list[tuple[object, ...]] = [
    ("dotdot", lambda p: [f(f"{p}/../x", b"evil")], "contains '..'"),
    ("bare-dotdot", lambda p: [f("../../x", b"evil")], "contains '..'"),
    ("etc", lambda p: [f("/etc/cnb-evil", b"evil")], "outside the layer path"),
    ("sibling-layer", lambda p: [f(p.rsplit("/", 1)[0] + "/other/x", b"evil")], "outside the layer path"),
    ("parent-as-file", lambda p: [f(p.rsplit("/", 1)[0], b"evil")], "outside the layer path"),
    ("symlink-to-root-then-file",
     lambda p: [d(p), sym(f"{p}/root", "/"), f(f"{p}/root/tmp/cnb-evil", b"evil")],
     "symlink target '/' is outside the layer", 1),
    ("relative-symlink-escape", lambda p: [sym(f"{p}/up", "../../../../")], "is outside the layer"),
    ("inside-symlink-then-write-through",
     lambda p: [d(f"{p}/sub"), sym(f"{p}/link", "sub"), f(f"{p}/link/x", b"evil")],
     "written through the symlink 'link'"),
    ("hardlink-outside", lambda p: [hard(f"{p}/passwd", "/etc/passwd")], "is outside the layer"),
    ("hardlink-dotdot", lambda p: [hard(f"{p}/x", f"{p}/../../outside.txt")], "contains '..'"),
    ("hardlink-to-symlink",
     lambda p: [sym(f"{p}/s", "t"), hard(f"{p}/h", f"{p}/s")], "is not a regular file"),
    ("char-device", lambda p: [special(f"{p}/null", tarfile.CHRTYPE)], "device nodes are not allowed"),
    ("block-device", lambda p: [special(f"{p}/sda", tarfile.BLKTYPE)], "device nodes are not allowed"),
    ("fifo", lambda p: [special(f"{p}/pipe", tarfile.FIFOTYPE)], "fifos are not allowed"),
]


@pytest.mark.parametrize("case", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_entries_refused(box: tuple[Path, Path, str], case: tuple[object, ...]) -> None:
    members, message = case[1], str(case[2])
    bad = int(case[3]) if len(case) > 3 else -1  # type: ignore[call-overload]
    root, dest, prefix = box
    entries = members(prefix)  # type: ignore[operator]
    before = snapshot(root, exclude=dest)
    with pytest.raises(ArchiveError) as err:
        extract_layer(io.BytesIO(tar_bytes(*entries)), dest, prefix)
    assert message in str(err.value)
    bad_name = entries[bad][0].name
    assert f"'{bad_name}'" in str(err.value), "the error names the entry"
    assert snapshot(root, exclude=dest) == before, "nothing changed outside the layer directory"
    assert (root / "outside.txt").read_text() == "precious"
    assert not Path("/etc/cnb-evil").exists()
    assert not Path("/tmp/cnb-evil").exists()


def test_symlink_to_other_layer_needs_link_root(box: tuple[Path, Path, str]) -> None:
    root, dest, prefix = box
    data = tar_bytes(sym(f"{prefix}/python", f"{root}/layers/other_bp/cpython/bin/python3"))
    with pytest.raises(ArchiveError, match="outside the layer"):
        extract_layer(io.BytesIO(data), dest, prefix)
    remove_tree(dest)
    extract_layer(io.BytesIO(data), dest, prefix, link_root=str(root / "layers"))
    assert os.readlink(dest / "python") == f"{root}/layers/other_bp/cpython/bin/python3"


def test_later_entry_replaces_symlink_without_following_it(box: tuple[Path, Path, str]) -> None:
    _root, dest, prefix = box
    data = tar_bytes(sym(f"{prefix}/x", "y"), f(f"{prefix}/y", b"target"), f(f"{prefix}/x", b"mine"))
    extract_layer(io.BytesIO(data), dest, prefix)
    assert not (dest / "x").is_symlink()
    assert (dest / "x").read_bytes() == b"mine"
    assert (dest / "y").read_bytes() == b"target"


def test_truncated_tar_is_an_archive_error(box: tuple[Path, Path, str]) -> None:
    _root, dest, prefix = box
    data = tar_bytes(f(f"{prefix}/big", os.urandom(20000)))
    with pytest.raises(ArchiveError, match="invalid layer tar"):
        extract_layer(io.BytesIO(data[:9000]), dest, prefix)


def test_hashing_reader_sees_every_byte(box: tuple[Path, Path, str]) -> None:
    _root, dest, prefix = box
    data = tar_bytes(f(f"{prefix}/a", b"a" * 5000)) + b"\0" * 7000  # trailing padding
    reader = HashingReader(io.BytesIO(data))
    extract_layer(reader, dest, prefix)
    reader.drain()
    assert reader.digest == sha256(data)
    assert reader.size == len(data)


class ZeroLayer:
    """A lazily generated tar with one big file of zeros (never materialised)."""

    def __init__(self, name: str, size: int) -> None:
        info = tarfile.TarInfo(name)
        info.size = size
        self._parts = [info.tobuf(tarfile.PAX_FORMAT)]
        self._left = size + ((-size) % 512)
        self._tail = b"\0" * 1024

    def read(self, n: int = -1) -> bytes:
        n = 1 << 16 if n < 0 else n
        if self._parts:
            return self._parts.pop(0)
        if self._left:
            k = min(n, self._left)
            self._left -= k
            return bytes(k)
        out, self._tail = self._tail[:n], self._tail[n:]
        return out


def test_extraction_streams(box: tuple[Path, Path, str]) -> None:
    _root, dest, prefix = box
    size = 48 * 1024 * 1024
    tracemalloc.start()
    try:
        extract_layer(ZeroLayer(f"{prefix}/big.bin", size), dest, prefix)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (dest / "big.bin").stat().st_size == size
    assert peak < 8 * 1024 * 1024, f"peak traced memory {peak} bytes: the layer was held in memory"
