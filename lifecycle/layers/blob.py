"""Turn a list of tar entries into a layer: diffID, and a gzip blob streamed into a layout.

Compression is python-isal (igzip) at a pinned version and level: about pigz speed on one core,
and the compressed bytes (so the layer digest) are stable for a given lifecycle version. The
diffID never depends on the compressor.
"""

from __future__ import annotations

import mmap
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from isal import isal_zlib

from lifecycle.image import model as m
from lifecycle.image.layout import BlobWriter
from lifecycle.layers.tar import CHUNK, Entry, HashingSink, write_tar

GZIP_LEVEL = 2
GZIP_WBITS = 31  # gzip container, header mtime 0
# isal's small hash tables for the level (zlib's memLevel 2-3): 0.7 MiB lower export peak than its
# default, faster (151 against 126 MiB/s on the bench app's files, measured apart: they stay in
# the CPU's caches) and the same size within 0.001% (part of the digest, like the level)
GZIP_MEM_LEVEL = 2
# The compressor is fed the tar in pieces of _PIECE bytes, the last one shorter: the blob (its
# digest) is a function of the tar bytes alone, whatever the reads and batches. Pieces are small so
# that what each call returns is too (isal emits bursts of up to 128 KiB): fed 1 MiB at a time, it
# returned megabyte-sized outputs which, freed between smaller blocks, grew the C heap by 4-5 MiB.
_PIECE = 1 << 16
_BATCH = 1 << 17  # handed to the compressor once this much is filled (smaller: more handovers)
_BUFFER = _BATCH + CHUNK + (1 << 16)  # room for a batch: under _BATCH, then a chunk or a header


@dataclass(frozen=True)
class Layer:
    """A finished layer: its diffID and its blob descriptor (size/digest of the gzip bytes)."""

    diff_id: str
    descriptor: m.Descriptor
    seconds: float = 0.0


class _Batches:
    """A sink that cuts the bytes written to it into batches and hands each to ``consume`` in a
    thread of its own, so the caller's thread (walking, reading and hashing the tar) and the
    consumer (compressing) use two cores: both release the GIL on large buffers.

    Once a write brings the batch to ``_BATCH`` bytes or more, its whole ``_PIECE``s are handed
    over and the rest starts the next batch; ``close`` hands over the rest. So every batch but
    the last is whole pieces, and the consumer can cut the stream into pieces at the same
    places whatever the writes were. Batches are filled in two buffers in turn, file bytes read
    straight into them (``reserve``): a batch is handed over, not queued, so when the producer
    hands over one buffer the consumer has finished with the other, which the producer fills
    next. A layer of any size so holds two buffers of at most about 0.25 MiB each, and allocates
    nothing per chunk; they are anonymous mappings, whose untouched pages cost nothing and which
    go back to the system whole. ``consume`` sees a view that is valid only during the call. The
    producer, reading and hashing, is faster than the compressor, so the wait costs no time.
    """

    def __init__(self, consume: Callable[[memoryview], object], finish: Callable[[], object] = lambda: None) -> None:
        self._consume = consume
        self._finish = finish
        self._buffers: list[mmap.mmap | None] = [None, None]
        self._current = 0
        self._filled = 0
        # The handover: one slot and two plain locks used as signals, C-level waits with no Python
        # condition objects (through a Queue and a Semaphore, the bench app's 2,400 handovers of
        # 128 KiB took about 1 s more, measured)
        self._slot: memoryview | None = None
        self._filled_slot = threading.Lock()
        self._filled_slot.acquire()  # released by the producer when the slot holds an item
        self._emptied_slot = threading.Lock()
        self._emptied_slot.acquire()  # released by the consumer when it has taken the item
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="layer-batches", daemon=True)
        self._thread.start()

    def reserve(self, size: int) -> memoryview:
        """Room for the next ``size`` bytes in the current batch (see ``commit``)."""
        need = self._filled + size
        buffer = self._buffers[self._current]
        if buffer is None or len(buffer) < need:
            # untouched pages of a mapping cost no memory: room for a whole batch from the start
            grown = mmap.mmap(-1, max(need, _BUFFER))
            if buffer is not None:
                grown[:self._filled] = buffer[:self._filled]
            self._buffers[self._current] = buffer = grown
        return memoryview(buffer)[self._filled:need]

    def commit(self, size: int) -> None:
        """The ``size`` reserved bytes are in place; hand the batch over once it is large enough."""
        self._filled += size
        if self._filled >= _BATCH:
            self._flush_pending(whole=True)

    def write(self, data: bytes, /) -> int:
        """Add ``data`` to the current batch; hand the batch over once it is large enough."""
        with self.reserve(len(data)) as room:
            room[:] = data
        self.commit(len(data))
        return len(data)

    def _flush_pending(self, *, whole: bool = False) -> None:
        """Hand over what is filled; with ``whole``, only whole pieces, the rest moves to the
        start of the next buffer."""
        if not self._filled:
            return
        if self._error is not None:
            raise self._error
        buffer = self._buffers[self._current]
        assert buffer is not None
        size = self._filled - self._filled % _PIECE if whole else self._filled
        rest = self._filled - size
        self._filled = 0
        self._current ^= 1
        self._hand_over(memoryview(buffer)[:size])
        if rest:  # the consumer has finished the next buffer, and only reads the handed-over part
            with self.reserve(rest) as room, memoryview(buffer) as filled:
                room[:] = filled[size:size + rest]
            self._filled = rest

    def _hand_over(self, item: memoryview | None) -> None:
        self._slot = item
        self._filled_slot.release()
        self._emptied_slot.acquire()

    def _take(self) -> memoryview | None:
        self._filled_slot.acquire()
        item, self._slot = self._slot, None
        self._emptied_slot.release()
        return item

    def _run(self) -> None:
        ended = False
        try:
            while (batch := self._take()) is not None:
                with batch:
                    self._consume(batch)
            ended = True
            self._finish()
        except BaseException as exc:  # handed to the producing thread (close or its next batch)
            self._error = exc
            # keep taking batches until the end so the producer never blocks (after the end, as
            # when the final write fails on a full disk, nothing more comes)
            while not ended and (batch := self._take()) is not None:
                batch.release()

    def close(self) -> None:
        """Hand over the last batch and wait until everything is consumed; raises what the
        consumer hit."""
        try:
            self._flush_pending()
        finally:
            self._hand_over(None)
            self._thread.join()
            self._buffers = [None, None]  # unmapped as soon as no view is left
        if self._error is not None:
            raise self._error


def _gzip_into(writer: BlobWriter) -> _Batches:
    """tar bytes -> gzip -> ``writer``, in the batches' thread, a ``_PIECE`` at a time."""
    compressor = isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, GZIP_WBITS, GZIP_MEM_LEVEL)

    def consume(batch: memoryview) -> None:
        for start in range(0, len(batch), _PIECE):
            out = compressor.compress(batch[start:start + _PIECE])
            if out:
                writer.write(out)

    return _Batches(consume, lambda: writer.write(compressor.flush()))


def diff_id_of(entries: Iterable[Entry]) -> str:
    """Only the diffID (sha256 of the tar), nothing written: the cheap reuse check. Hashed in the
    caller's thread: a hashing thread would save a little time for a few MiB of batches in flight."""
    sink = HashingSink()
    write_tar(entries, sink)
    return sink.digest


class BlobTarget(Protocol):
    """Where a layer blob is written: a layout, or a store's staging (which may upload it too)."""

    def blob_writer(self) -> BlobWriter:
        """A writer for one new blob."""
        ...


def build_layer(entries: Iterable[Entry], target: BlobTarget) -> Layer:
    """Stream ``entries`` into a new gzip blob in ``target``; an existing identical blob is kept."""
    start = time.monotonic()
    with target.blob_writer() as writer:
        gz = _gzip_into(writer)
        tar = HashingSink(gz)
        try:
            write_tar(entries, tar)
        finally:
            gz.close()  # also when the tar failed: the thread ends before the blob is dropped
        desc = writer.commit(m.OCI_LAYER_GZIP)
    return Layer(tar.digest, desc, time.monotonic() - start)


def lazy(factory: Callable[[], Iterable[Entry]]) -> Callable[[], Iterable[Entry]]:
    """Entries are produced by a factory so that a layer can be walked twice (hash, then build)."""
    return factory
