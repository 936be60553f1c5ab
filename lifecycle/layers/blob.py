"""Turn a list of tar entries into a layer: diffID, and a gzip blob streamed into a layout.

Compression is python-isal (igzip) at a pinned version and level: about pigz speed on one core,
and the compressed bytes (so the layer digest) are stable for a given lifecycle version. The
diffID never depends on the compressor.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from isal import isal_zlib

from lifecycle.image import model as m
from lifecycle.image.layout import BlobWriter, Layout
from lifecycle.layers.tar import Entry, HashingSink, write_tar

GZIP_LEVEL = 2
GZIP_WBITS = 31  # gzip container, header mtime 0


@dataclass(frozen=True)
class Layer:
    """A finished layer: its diffID and its blob descriptor (size/digest of the gzip bytes)."""

    diff_id: str
    descriptor: m.Descriptor
    seconds: float = 0.0


class _GzipSink:
    """tar bytes -> diffID hash -> gzip -> blob writer."""

    def __init__(self, writer: BlobWriter) -> None:
        self.writer = writer
        self.compressor = isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, GZIP_WBITS)
        self._pending: list[bytes] = []
        self._pending_size = 0

    def write(self, data: bytes, /) -> int:
        # Small tar headers are batched so the compressor sees large buffers (it then releases
        # the GIL and threads can compress layers in parallel).
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= 1 << 18:
            self._flush_pending()
        return len(data)

    def _flush_pending(self) -> None:
        if self._pending:
            out = self.compressor.compress(b"".join(self._pending))
            if out:
                self.writer.write(out)
            self._pending.clear()
            self._pending_size = 0

    def close(self) -> None:
        self._flush_pending()
        self.writer.write(self.compressor.flush())


def diff_id_of(entries: Iterable[Entry]) -> str:
    """Only the diffID (sha256 of the tar), nothing written: the cheap reuse check."""
    sink = HashingSink()
    write_tar(entries, sink)
    return sink.digest


def build_layer(entries: Iterable[Entry], layout: Layout) -> Layer:
    """Stream ``entries`` into a new gzip blob in ``layout``; an existing identical blob is kept."""
    start = time.monotonic()
    with layout.blob_writer() as writer:
        gz = _GzipSink(writer)
        tar = HashingSink(gz)
        write_tar(entries, tar)
        gz.close()
        desc = writer.commit(m.OCI_LAYER_GZIP)
    return Layer(tar.digest, desc, time.monotonic() - start)


def lazy(factory: Callable[[], Iterable[Entry]]) -> Callable[[], Iterable[Entry]]:
    """Entries are produced by a factory so that a layer can be walked twice (hash, then build)."""
    return factory
