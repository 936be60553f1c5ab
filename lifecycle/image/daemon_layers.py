"""Layer bytes out of the Docker daemon: ``docker save`` of one image, streamed, keeping only the
layers asked for.

The daemon offers no way to read one layer of an image, only the whole image as a ``docker save``
archive (``GET /images/<name>/get``). That archive is read as a stream: each layer tar in it
(``<v1 id>/layer.tar`` in the legacy format of Docker before 25, ``blobs/sha256/<hex>`` in the OCI
format after) is hashed while it is spooled to a file next to the destination; a tar whose sha256
is a wanted diffID is kept (renamed into place), any other is deleted at once, so at most one
unwanted layer is on disk at a time. The stream is closed as soon as every wanted layer was found.
Layer tars in the archive are uncompressed, so their sha256 is their diffID.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from lifecycle.errors import ImageError

if TYPE_CHECKING:
    from lifecycle.image.daemon import DaemonStore

CHUNK = 1 << 20


class _ChunkSource(io.RawIOBase):
    """Raw reads over an iterator of byte chunks (no copying of what is left of a chunk)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._chunk = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._chunk:
            try:
                self._chunk = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._chunk))
        buffer[:n] = self._chunk[:n]
        self._chunk = self._chunk[n:]
        return n


def IterReader(chunks: Iterator[bytes]) -> IO[bytes]:
    """A buffered file over an iterator of byte chunks (for ``tarfile`` stream mode, gzip)."""
    return io.BufferedReader(_ChunkSource(chunks), CHUNK)


def _is_layer_member(member: tarfile.TarInfo) -> bool:
    return member.isreg() and (member.name.endswith("/layer.tar") or member.name.startswith("blobs/sha256/"))


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """The chain ID of each layer: the first diffID, then sha256 of ``"<chain below> <diffID>"``.
    ``docker load`` skips reading a layer whose chain the daemon already holds."""
    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest())
    return out


def layer_file_name(diff_id: str) -> str:
    """The file a kept layer tar gets in the destination directory."""
    return diff_id.replace(":", "-") + ".tar"


def save_layers(store: DaemonStore, name: str, wanted: set[str], dest: Path) -> dict[str, Path]:
    """Stream ``docker save`` of image ``name`` (an ID or a name) and keep the layer tars whose
    diffIDs are in ``wanted`` as ``dest/<alg>-<hex>.tar``; returns diffID -> file for those found
    (a layer the image does not have is simply absent from the result)."""
    import docker.errors

    found: dict[str, Path] = {}
    if not wanted:
        return found
    dest.mkdir(parents=True, exist_ok=True)
    api = store.api()
    chunks: Any = None
    try:
        chunks = api.get_image(name, chunk_size=CHUNK)
        with tarfile.open(fileobj=IterReader(chunks), mode="r|") as archive:
            for member in archive:
                if not _is_layer_member(member):
                    continue
                source = archive.extractfile(member)
                if source is None:
                    continue
                diff_id = _spool(source, dest, wanted, found)
                if diff_id is not None and len(found) == len(wanted):
                    break
    except docker.errors.APIError as exc:
        raise ImageError(f"reading layers of {name} from the Docker daemon: {_short(exc)}") from None
    except docker.errors.DockerException as exc:
        raise ImageError(f"cannot connect to the Docker daemon at {store.host}: {_short(exc)}") from None
    except (tarfile.TarError, OSError) as exc:
        raise ImageError(f"reading layers of {name} from the Docker daemon: {exc}") from None
    finally:
        if chunks is not None:
            with contextlib.suppress(Exception):
                chunks.close()  # stop the daemon's stream when we have what we need
    return found


def _spool(source: Any, dest: Path, wanted: set[str], found: dict[str, Path]) -> str | None:
    """Copy one layer tar to a temporary file while hashing it; keep it when wanted."""
    hasher = hashlib.sha256()
    tmp = dest / f".spool-{os.getpid()}.tar"
    try:
        with open(tmp, "wb") as out:
            for chunk in iter(lambda: source.read(CHUNK), b""):
                hasher.update(chunk)
                out.write(chunk)
        diff_id = "sha256:" + hasher.hexdigest()
        if diff_id in wanted and diff_id not in found:
            target = dest / layer_file_name(diff_id)
            os.replace(tmp, target)
            found[diff_id] = target
            return diff_id
        return None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
