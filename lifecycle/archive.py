"""Safe, streaming extraction of layer tars (the restorer's only way to write cached bytes).

A layer tar names its entries by absolute path (``/layers/<bp>/<layer>/bin/x``), with the parent
directories (``/layers``, ``/layers/<bp>``) first. :func:`extract_layer` maps the layer's own path
prefix onto a target directory and refuses, with an error naming the entry:

- any name or hard-link target containing ``..``, and any name outside the prefix (other than
  the prefix's parent directories, which are skipped);
- symlinks whose target leaves the layer (relative targets are resolved lexically from the link's
  directory; absolute targets must lie under the prefix, or under ``link_root`` when given);
- hard links to anything that is not a regular file already extracted from the same layer;
- any entry whose parent path goes through a symlink (nothing is ever written through a link);
- device nodes, fifos and every other special entry type.

The tar is read once, as a stream (``r|``); file data is copied in chunks, never held whole.
Entries are created with ``O_NOFOLLOW``/``O_EXCL`` after an existing non-directory at the same
path is unlinked. Set-uid/set-gid bits are dropped. Directory modes and times are applied last.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tarfile
from pathlib import Path, PurePosixPath
from typing import IO, Any, Protocol, cast

CHUNK = 1 << 20
_MODE_MASK = 0o1777  # permission bits and sticky; never set-uid / set-gid
_FILE_TYPES = {tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE}


class Readable(Protocol):
    """A binary stream: ``read(n)``."""

    def read(self, n: int = -1, /) -> bytes:
        """Up to ``n`` bytes; ``b""`` at the end."""
        ...


class ArchiveError(Exception):
    """A tar entry was refused or the tar could not be read; the message names the entry."""


class HashingReader:
    """Wraps a binary stream and hashes every byte read through it."""

    def __init__(self, raw: IO[bytes] | Readable, algorithm: str = "sha256") -> None:
        self._raw = raw
        self._algorithm = algorithm
        self._hash = hashlib.new(algorithm)
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        """Read up to ``n`` bytes."""
        data = self._raw.read(n)
        self._hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        """Read (and hash) whatever is left, in chunks."""
        while self.read(CHUNK):
            pass

    @property
    def digest(self) -> str:
        """``<alg>:<hex>`` of what was read so far."""
        return f"{self._algorithm}:{self._hash.hexdigest()}"


def _parts(name: str, what: str, entry: str) -> tuple[str, ...]:
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise ArchiveError(f"refusing to extract '{entry}': {what} contains '..'")
    return parts


def _is_under(parts: tuple[str, ...], root: tuple[str, ...]) -> bool:
    return parts[: len(root)] == root


class _Extractor:
    def __init__(self, dest: Path, prefix: str, owner: tuple[int, int] | None, link_root: str | None) -> None:
        self.dest = Path(dest)
        self.prefix = _parts(prefix, "prefix", prefix)
        self.owner = owner
        self.link_root = _parts(link_root, "link root", link_root) if link_root else None
        self.dirs: list[tuple[Path, int, float]] = []

    # ---- paths -------------------------------------------------------------------------------
    def relative(self, member: tarfile.TarInfo) -> tuple[str, ...] | None:
        """The entry's path under the layer; None for the prefix's parent directories."""
        parts = _parts(member.name, "path", member.name)
        if _is_under(parts, self.prefix):
            return parts[len(self.prefix):]
        if self.prefix[: len(parts)] == parts and member.isdir():
            return None  # /layers, /layers/<bp>: parents written before the layer itself
        raise ArchiveError(f"refusing to extract '{member.name}': it is outside the layer path "
                           f"'/{'/'.join(self.prefix)}'")

    def target(self, rel: tuple[str, ...], entry: str) -> Path:
        """``dest/rel`` after checking that no existing parent component is a symlink."""
        path = self.dest
        for i, part in enumerate(rel[:-1]):
            path = path / part
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                os.mkdir(path, 0o755)
                self._chown(path)
                continue
            if stat.S_ISLNK(st.st_mode):
                raise ArchiveError(f"refusing to extract '{entry}': it would be written through the "
                                   f"symlink '{'/'.join(rel[: i + 1])}'")
            if not stat.S_ISDIR(st.st_mode):
                raise ArchiveError(f"refusing to extract '{entry}': a parent path is not a directory")
        return path / rel[-1] if rel else path

    def _clear(self, path: Path, entry: str) -> None:
        """Remove a non-directory at ``path`` (tar semantics: later entries replace earlier ones)."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise ArchiveError(f"refusing to extract '{entry}': a directory already exists at that path")
        os.unlink(path)

    def _chown(self, path: Path) -> None:
        if self.owner is not None:
            os.lchown(path, *self.owner)

    # ---- entries -----------------------------------------------------------------------------
    def entry(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        rel = self.relative(member)
        if rel is None:
            return
        if member.isdir():
            self.directory(rel, member)
        elif member.type in _FILE_TYPES:
            self.file(tar, rel, member)
        elif member.issym():
            self.symlink(rel, member)
        elif member.islnk():
            self.hardlink(rel, member)
        elif member.ischr() or member.isblk():
            raise ArchiveError(f"refusing to extract '{member.name}': device nodes are not allowed")
        elif member.isfifo():
            raise ArchiveError(f"refusing to extract '{member.name}': fifos are not allowed")
        else:
            raise ArchiveError(f"refusing to extract '{member.name}': unsupported entry type "
                               f"{member.type!r}")

    def directory(self, rel: tuple[str, ...], member: tarfile.TarInfo) -> None:
        path = self.target(rel, member.name)
        if rel:
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                st = None
            if st is not None and not stat.S_ISDIR(st.st_mode):
                os.unlink(path)  # a file or symlink replaced by a real directory: nothing followed
                st = None
            if st is None:
                os.mkdir(path, 0o755)
        self._chown(path)
        self.dirs.append((path, member.mode & _MODE_MASK, float(member.mtime)))

    def file(self, tar: tarfile.TarFile, rel: tuple[str, ...], member: tarfile.TarInfo) -> None:
        if not rel:
            raise ArchiveError(f"refusing to extract '{member.name}': the layer path must be a directory")
        path = self.target(rel, member.name)
        self._clear(path, member.name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            source = tar.extractfile(member)
            if source is not None:
                shutil.copyfileobj(source, out, CHUNK)
            if self.owner is not None:
                os.fchown(out.fileno(), *self.owner)
            os.fchmod(out.fileno(), member.mode & _MODE_MASK)
        os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)

    def symlink(self, rel: tuple[str, ...], member: tarfile.TarInfo) -> None:
        if not rel:
            raise ArchiveError(f"refusing to extract '{member.name}': the layer path must be a directory")
        link = member.linkname
        if not link:
            raise ArchiveError(f"refusing to extract '{member.name}': symlink has an empty target")
        if link.startswith("/"):
            parts = _parts(link, "symlink target", member.name)
            inside = _is_under(parts, self.prefix) or (self.link_root is not None
                                                        and _is_under(parts, self.link_root))
        else:
            resolved = list(rel[:-1])
            inside = True
            for part in PurePosixPath(link).parts:
                if part == "..":
                    if not resolved:
                        inside = False
                        break
                    resolved.pop()
                elif part not in ("", "."):
                    resolved.append(part)
        if not inside:
            raise ArchiveError(f"refusing to extract '{member.name}': symlink target '{link}' is outside "
                               f"the layer")
        path = self.target(rel, member.name)
        self._clear(path, member.name)
        os.symlink(link, path)
        self._chown(path)
        os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)

    def hardlink(self, rel: tuple[str, ...], member: tarfile.TarInfo) -> None:
        if not rel:
            raise ArchiveError(f"refusing to extract '{member.name}': the layer path must be a directory")
        parts = _parts(member.linkname, "hard link target", member.name)
        if not _is_under(parts, self.prefix) or len(parts) == len(self.prefix):
            raise ArchiveError(f"refusing to extract '{member.name}': hard link target "
                               f"'{member.linkname}' is outside the layer")
        source = self.target(parts[len(self.prefix):], member.name)
        try:
            st = os.lstat(source)
        except FileNotFoundError:
            raise ArchiveError(f"refusing to extract '{member.name}': hard link target "
                               f"'{member.linkname}' was not extracted before it") from None
        if not stat.S_ISREG(st.st_mode):
            raise ArchiveError(f"refusing to extract '{member.name}': hard link target "
                               f"'{member.linkname}' is not a regular file")
        path = self.target(rel, member.name)
        if path == source:
            return
        self._clear(path, member.name)
        os.link(source, path, follow_symlinks=False)

    def finish(self) -> None:
        for path, mode, mtime in reversed(self.dirs):
            os.chmod(path, mode)
            os.utime(path, (mtime, mtime))


def extract_layer(stream: Readable, dest: Path, prefix: str, *, owner: tuple[int, int] | None = None,
                  link_root: str | None = None) -> None:
    """Extract the layer tar read from ``stream`` into the directory ``dest``.

    ``prefix`` is the layer's path inside the tar (``/layers/<bp>/<layer>``); it is mapped onto
    ``dest``. ``owner`` = (uid, gid) chowns every created entry. ``link_root`` additionally allows
    absolute symlink targets under it (e.g. the layers directory, for links to other layers).
    Raises :class:`ArchiveError` on the first refused entry or unreadable tar; the caller owns
    ``dest`` and removes it on failure.
    """
    dest.mkdir(parents=True, exist_ok=True)
    extractor = _Extractor(dest, prefix, owner, link_root)
    try:
        with tarfile.open(fileobj=cast(Any, stream), mode="r|", bufsize=CHUNK) as tar:
            for member in tar:
                extractor.entry(tar, member)
    except ArchiveError:
        raise
    except (tarfile.TarError, EOFError) as exc:
        raise ArchiveError(f"invalid layer tar: {exc}") from None
    extractor.finish()


def remove_tree(path: Path) -> None:
    """``rm -rf`` that also copes with read-only directories (restored trees may contain them)."""
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
        return
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    for root, dirs, _files in os.walk(path):
        for name in dirs:
            full = os.path.join(root, name)
            if not os.path.islink(full):
                with contextlib.suppress(OSError):
                    os.chmod(full, 0o700)
    shutil.rmtree(path)
