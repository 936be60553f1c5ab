"""Turn a list of tar entries into a layer: diffID, and a gzip blob streamed into a layout.

Compression is python-isal (igzip) at a pinned version and level: about pigz speed on one core,
and the compressed bytes (so the layer digest) are stable for a given lifecycle version. The
diffID never depends on the compressor.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from isal import isal_zlib

from lifecycle.image import model as m
from lifecycle.image.layout import BlobWriter
from lifecycle.layers.tar import Entry, HashingSink, write_tar

GZIP_LEVEL = 2
GZIP_WBITS = 31  # gzip container, header mtime 0
_BATCH = 1 << 18  # the compressor's input is cut after the write that fills this (part of the digest)
_HASH_CHUNK = 1 << 18  # reads when only hashing: the same diffID for any size, and less in memory


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

    A batch ends with the write that brings it to ``_BATCH`` bytes or more, and at ``close``: the
    same cut for the same writes (the compressor's output, so the blob digest, depends on it).
    A batch is handed over, not queued: the producer waits until the consumer has taken it, so at
    most two batches (up to about 1.25 MiB each) exist at once, whatever the layer's size. The
    producer, reading and hashing, is faster than the compressor, so the wait costs no time.
    """

    def __init__(self, consume: Callable[[bytes], object], finish: Callable[[], object] = lambda: None) -> None:
        self._consume = consume
        self._finish = finish
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=1)
        self._taken = threading.Semaphore(0)  # released by the consumer for each item it takes
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="layer-batches", daemon=True)
        self._thread.start()

    def write(self, data: bytes, /) -> int:
        """Add ``data`` to the current batch; hand the batch over once it is large enough."""
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= _BATCH:
            self._flush_pending()
        return len(data)

    def _flush_pending(self) -> None:
        if self._pending:
            if self._error is not None:
                raise self._error
            batch = b"".join(self._pending)
            self._pending.clear()
            self._pending_size = 0
            self._hand_over(batch)

    def _hand_over(self, item: bytes | None) -> None:
        self._queue.put(item)
        self._taken.acquire()

    def _take(self) -> bytes | None:
        item = self._queue.get()
        self._taken.release()
        return item

    def _run(self) -> None:
        ended = False
        try:
            while (batch := self._take()) is not None:
                self._consume(batch)
                del batch  # not kept while waiting for the next one
            ended = True
            self._finish()
        except BaseException as exc:  # handed to the producing thread (close or its next batch)
            self._error = exc
            # keep taking batches until the end so the producer never blocks (after the end, as
            # when the final write fails on a full disk, nothing more comes)
            while not ended and self._take() is not None:
                pass

    def close(self) -> None:
        """Hand over the last batch and wait until everything is consumed; raises what the
        consumer hit."""
        try:
            self._flush_pending()
        finally:
            self._hand_over(None)
            self._thread.join()
        if self._error is not None:
            raise self._error


def _gzip_into(writer: BlobWriter) -> _Batches:
    """tar bytes -> gzip -> ``writer``, in the batches' thread."""
    compressor = isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, GZIP_WBITS)

    def consume(batch: bytes) -> None:
        out = compressor.compress(batch)
        if out:
            writer.write(out)

    return _Batches(consume, lambda: writer.write(compressor.flush()))


def diff_id_of(entries: Iterable[Entry]) -> str:
    """Only the diffID (sha256 of the tar), nothing written: the cheap reuse check. Hashed in the
    caller's thread: a hashing thread would save a little time for a few MiB of batches in flight."""
    sink = HashingSink()
    write_tar(entries, sink, chunk=_HASH_CHUNK)
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
