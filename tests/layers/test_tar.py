"""lifecycle.layers.tar: the common-case header is the general writer's block, byte for byte
(tests/differential/test_tar_headers.py compares the general writer with Go's)."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from lifecycle.layers import tar
from lifecycle.layers.tar import CHUNK, Entry, write_tar


@pytest.mark.parametrize("seed", range(3))
def test_plain_header_is_the_general_block(seed: int) -> None:
    r = random.Random(seed)
    plain = 0
    for _ in range(3000):
        kind = r.choice(["dir", "file", "symlink"])
        name = "/" + "".join(r.choice("ab/c.-_\u00e9" if r.random() < 0.05 else "ab/c.-_")
                             for _ in range(r.choice([1, 9, 60, 98, 99, 100, 101, 140])))
        link = "".join(r.choice("xy/.") for _ in range(r.choice([0, 1, 40, 100, 101]))) if kind == "symlink" else ""
        uid, gid = r.choice([0, 1000, 8**7 - 1, 8**7]), r.choice([0, 1000, 8**7 - 1, 8**7])
        mode = r.choice([0o755, 0o644, 0o7777, 0o1777, 0])
        size = r.choice([0, 1, 513, 8**11 - 1, 8**11]) if kind == "file" else 0
        entry = Entry(name, kind, mode, uid, gid, size=size, linkname=link)
        raw_name, raw_link = name.encode(), link.encode()
        general = tar._general_header(entry, raw_name, raw_link, size, tar._TYPES[kind])
        assert tar._header(entry) == general, entry
        plain += len(general) == tar.BLOCK and raw_name.isascii() and len(raw_name) <= 100
    assert plain > 500  # the fast path was exercised


class _Recorder:
    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.data = io.BytesIO()

    def write(self, data: bytes, /) -> int:
        self.sizes.append(len(data))
        self.data.write(data)
        return len(data)


def test_writes_header_chunks_and_padding_in_order(tmp_path: Path) -> None:
    """What a plain sink sees: the header, the file in CHUNK-sized reads, then its padding."""
    big = tmp_path / "big"
    big.write_bytes(b"x" * (2 * CHUNK + 5))
    sink = _Recorder()
    write_tar([Entry("/big", "file", 0o644, 0, 0, source=big, size=2 * CHUNK + 5),
               Entry("/d", "dir", 0o755, 0, 0)], sink)
    assert sink.sizes == [512, CHUNK, CHUNK, 5, 507, 512, 1024]


def test_a_file_that_shrank_is_an_error(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.write_bytes(b"abc")
    with pytest.raises(OSError, match="shrank while being archived"):
        write_tar([Entry("/small", "file", 0o644, 0, 0, source=small, size=10)], _Recorder())
