"""lifecycle.layers.blob: the batches between the tar writer and the compressor."""

from __future__ import annotations

import os
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


def test_batches_are_cut_after_the_write_that_fills_them() -> None:
    seen: list[int] = []
    batches = blob._Batches(lambda b: seen.append(len(b)))
    for size in (100, blob._BATCH - 100, 7, blob._BATCH + 5, 3):
        batches.write(b"x" * size)
    assert _close_within(batches, 30) is None
    assert seen == [blob._BATCH, 7 + blob._BATCH + 5, 3]


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
