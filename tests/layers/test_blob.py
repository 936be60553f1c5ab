"""lifecycle.layers.blob: the batches between the tar writer and the compressor."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import pytest

from lifecycle.image.layout import Layout
from lifecycle.layers import blob
from lifecycle.layers.tar import CHUNK, Entry, HashingSink, write_tar


def _close_within(batches: blob._Batches, seconds: float) -> BaseException | None:
    """Close ``batches`` in a thread; what it raised (None when nothing), failing on a hang."""
    raised: list[BaseException] = []

    def close() -> None:
        try:
            batches.close()
        except BaseException as exc:  # handed to the test
            raised.append(exc)

    closer = threading.Thread(target=close, daemon=True)
    closer.start()
    closer.join(seconds)
    assert not closer.is_alive(), "close() hung"
    return raised[0] if raised else None


def test_batches_are_whole_pieces_handed_over_once_filled() -> None:
    """A write that brings the batch to _BATCH hands over its whole pieces; the rest starts the
    next batch, and the stream reaches the consumer whole and in order."""
    seen: list[bytes] = []
    batches = blob._Batches(lambda b: seen.append(bytes(b)))  # a view is valid only during the call
    r = random.Random(7)
    stream = b""
    for size in (100, blob._BATCH - 100, 7, blob._BATCH + 5, 3, blob._BATCH - blob._PIECE + 11, blob._PIECE):
        data = r.randbytes(size)
        batches.write(data)
        stream += data
    assert _close_within(batches, 30) is None
    assert [len(b) for b in seen] == [blob._BATCH, blob._BATCH, blob._BATCH, 26]
    assert b"".join(seen) == stream


def test_the_blob_is_the_same_however_the_tar_is_written(tmp_path: Path) -> None:
    """The compressor's pieces are cut from the stream, not from the writes: the same bytes give
    the same blob (so the same layer digest) whether they came in many small writes or few big."""
    data = random.Random(3).randbytes(700_000) + b"text " * 100_000
    layout = Layout(tmp_path / "layout")
    layout.init()
    digests = set()
    for step in (1000, blob._PIECE - 1, blob._BATCH, len(data)):
        with layout.blob_writer() as writer:
            gz = blob._gzip_into(writer)
            for start in range(0, len(data), step):
                gz.write(data[start:start + step])
            gz.close()
            digests.add(writer.commit("application/octet-stream").digest)
    # pinned: another piece size, level, memory level or isal version moves layer digests (this
    # one is over 64 KiB; the small layers of test_export_digests kept theirs through both changes)
    assert digests == {"sha256:49eecb9106beb31b3d4748db9d5e3592b4213d456e11b69760f472928654a801"}


def test_a_failing_final_write_is_raised_not_waited_on() -> None:
    """The compressor's last write (after the end of the tar) failing, as on a full disk."""

    def finish() -> None:
        raise OSError(28, "No space left on device")

    batches = blob._Batches(lambda b: None, finish)
    batches.write(b"y" * (blob._BATCH * 3))
    exc = _close_within(batches, 30)
    assert isinstance(exc, OSError) and exc.errno == 28


@pytest.mark.parametrize("batches_before_failure", [0, 2])
def test_a_failing_consumer_never_blocks_the_producer(batches_before_failure: int) -> None:
    count = 0

    def consume(_: bytes) -> None:
        nonlocal count
        count += 1
        if count > batches_before_failure:
            raise OSError(5, "Input/output error")

    batches = blob._Batches(consume)
    with pytest.raises(OSError):
        for _ in range(50):  # the producer learns of the failure at a later batch
            batches.write(b"z" * blob._BATCH)
    assert isinstance(_close_within(batches, 30), OSError)


def test_the_reuse_check_hashes_the_same_tar_as_a_built_layer(tmp_path: Path) -> None:
    """``diff_id_of`` reads in smaller pieces than a layer build; the diffID is the same."""
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * CHUNK + 12345))
    entries = [Entry("/big.bin", "file", 0o644, 0, 0, source=big, size=big.stat().st_size),
               Entry("/d", "dir", 0o755, 0, 0)]
    sink = HashingSink()
    write_tar(entries, sink)
    assert blob.diff_id_of(entries) == sink.digest
    layout = Layout(tmp_path / "layout")
    layout.init()
    assert blob.build_layer(entries, layout).diff_id == sink.digest
