"""Uploading a large layer blob while it is still being written (issue 15: a registry export costs
about a layout export plus the upload of its blobs, not their sum).

A :class:`StreamingWriter` is the blob writer a registry staging hands out. Once the blob passes
:data:`STREAM_AFTER` bytes it opens a :class:`BlobStream`: an upload session that a thread of the
staging feeds with ``PATCH`` chunks of :data:`~lifecycle.image.registry_client.UPLOAD_CHUNK` bytes
read back from the blob's file as soon as the writer has written them (so memory stays flat), and
closes with ``PUT ?digest=`` once the commit knows the digest.

Why only large blobs: the digest is known only at the end, so a streamed blob cannot first be
checked with ``HEAD`` (the registry may already have it); small blobs, which are most layers,
keep the check and are uploaded when complete. The threshold is the chunked-upload one: a blob
that large would be sent in ``PATCH`` chunks anyway.

The writer never waits for the upload: it only records how far the file has grown, so a slow or
dead registry cannot block the build. A stream that fails (any registry error, after the
transport's retries) gives up its session, and the blob is uploaded the ordinary way once complete,
which reports a registry that is really gone exactly as a non-streamed upload does. A writer that
aborts (the build failed) makes its stream delete the session.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from lifecycle.image import model as m
from lifecycle.image.layout import BlobWriter, Layout
from lifecycle.image.registry_client import CHUNKED_UPLOAD_THRESHOLD, UPLOAD_CHUNK, RegistryClient

STREAM_AFTER = CHUNKED_UPLOAD_THRESHOLD


class _WindowReader:
    """Reads a shared descriptor at its own offset (``pread``): each request body of a stream, and
    each retry of one, reads its window without disturbing another's; closing it keeps the
    descriptor (the stream closes that)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pos = 0

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._pos = offset if whence == os.SEEK_SET else self._pos + offset
        return self._pos

    def read(self, size: int = -1) -> bytes:
        data = os.pread(self._fd, size if size >= 0 else 1 << 20, self._pos)
        self._pos += len(data)
        return data

    def close(self) -> None:
        """The descriptor stays open."""

    def __enter__(self) -> _WindowReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BlobStream:
    """One blob uploaded while it is written: :meth:`run` (in a thread of the staging) sends the
    bytes the writer reports with :meth:`grew`, and finishes after :meth:`committed`, or deletes
    the session after :meth:`abort`."""

    def __init__(self, client: RegistryClient, repository: str, fd: int) -> None:
        self._client = client
        self._repository = repository
        self._fd = fd
        self._cond = threading.Condition()
        self._written = 0
        self._final: m.Descriptor | None = None
        self._aborted = False
        self.error: BaseException | None = None

    def grew(self, size: int) -> None:
        """The first ``size`` bytes are in the file (never blocks)."""
        with self._cond:
            self._written = size
            self._cond.notify_all()

    def committed(self, desc: m.Descriptor) -> None:
        """The blob is complete: send the rest, then close the session with its digest."""
        with self._cond:
            self._written = desc.size
            self._final = desc
            self._cond.notify_all()

    def abort(self) -> None:
        """Drop the upload (the build failed, or the export is over); never blocks."""
        with self._cond:
            self._aborted = True
            self._cond.notify_all()

    @property
    def digest(self) -> str | None:
        """The blob's digest once committed."""
        with self._cond:
            return self._final.digest if self._final is not None else None

    def _next(self, offset: int) -> tuple[int, str | None] | None:
        """Wait until a full chunk past ``offset`` is written, or the blob ends: (bytes to send
        now, the digest when they are the last); None when aborted."""
        with self._cond:
            self._cond.wait_for(lambda: self._aborted or self._final is not None
                                or self._written - offset >= UPLOAD_CHUNK)
            if self._aborted:
                return None
            if self._final is None:
                return UPLOAD_CHUNK, None
            last = offset + UPLOAD_CHUNK >= self._final.size
            return min(UPLOAD_CHUNK, self._final.size - offset), self._final.digest if last else None

    def run(self) -> bool:
        """Upload the blob as it is written; True when the registry has it, False when the stream
        was given up (aborted, or a registry error, kept in :attr:`error`)."""
        location: str | None = None
        try:
            with self._cond:
                if self._aborted:
                    return False
            location = self._client.start_upload(self._repository)
            offset = 0
            while (step := self._next(offset)) is not None:
                length, digest = step
                if length:
                    location = self._client.upload_chunk(self._repository, location, self._reader, offset, length)
                    offset += length
                if digest is not None:
                    self._client.finish_upload(self._repository, location, digest)
                    return True
        except Exception as exc:  # whatever went wrong, the ordinary upload of the finished blob follows
            self.error = exc
        finally:
            os.close(self._fd)
        if location is not None:
            self._client.cancel_upload(self._repository, location)
        return False

    def _reader(self) -> IO[bytes]:
        return _WindowReader(self._fd)  # type: ignore[return-value]


class StreamingWriter(BlobWriter):
    """A blob writer that hands its blob to a :class:`BlobStream` once it passes
    :data:`STREAM_AFTER` bytes (``start`` opens the stream, given the file's read descriptor)."""

    def __init__(self, layout: Layout, start: Callable[[int], BlobStream]) -> None:
        super().__init__(layout)
        self._start = start
        self._stream: BlobStream | None = None

    def write(self, data: bytes) -> int:
        """Append bytes; past the threshold, also tell the stream how far the file is written."""
        n = super().write(data)
        if self._stream is None and self.size > STREAM_AFTER:
            self._stream = self._start(self.open_written())
        if self._stream is not None:
            self.flush()
            self._stream.grew(self.size)
        return n

    def commit(self, media_type: str, pin: Path | None = None) -> m.Descriptor:
        """Commit the blob; a stream sends its last bytes and closes its session."""
        desc = super().commit(media_type, pin)
        if self._stream is not None:
            self._stream.committed(desc)
        return desc

    def abort(self) -> None:
        """Drop the temp file (when not committed) and the upload session with it."""
        if self._stream is not None and self._stream.digest is None:
            self._stream.abort()
        super().abort()

